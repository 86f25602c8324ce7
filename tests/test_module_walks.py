"""The cached module walk (module.py, ``named_modules``): every change of the tree, at any depth, is seen."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref import module as module_mod
from hdlif_ref.module import Module, Parameter, Sequential


class Leaf(Module):
    def __init__(self):
        super().__init__()
        self.w = Parameter(np.zeros(2))


def fresh(model):
    return [(n, id(m)) for n, m in model._walk_modules("")]


def cached(model):
    return [(n, id(m)) for n, m in model.named_modules()]


@pytest.mark.parametrize("change", ["add", "replace", "delete", "buffer_over_child", "plain_over_child",
                                    "deep_add", "deep_delete", "shared"])
def test_every_tree_change_invalidates_the_cached_walk(change):
    inner = Sequential(Leaf(), Leaf())
    model = Sequential(inner, Leaf())
    assert cached(model) == fresh(model)
    before = cached(model)
    if change == "add":
        model.extra = Leaf()
    elif change == "replace":
        setattr(model, "1", Leaf())
    elif change == "delete":
        delattr(model, "1")
    elif change == "buffer_over_child":
        model.register_buffer("1", np.zeros(1))
    elif change == "plain_over_child":
        setattr(model, "1", 3)
    elif change == "deep_add":
        inner[0].child = Leaf()
    elif change == "deep_delete":
        delattr(inner, "0")
    else:
        model.again = inner  # the same module twice: walked once
    after = cached(model)
    assert after == fresh(model)
    assert after != before or change == "shared"
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in
                                                        _params_fresh(model)]


def _params_fresh(model):
    seen, out = set(), []
    for mod_name, module in model._walk_modules(""):
        for name, p in module._parameters.items():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(((f"{mod_name}.{name}" if mod_name else name), p))
    return out


def test_parameter_and_buffer_changes_need_no_new_walk():
    """Parameters and buffers are read from each module's tables at every walk: always current."""
    model = Sequential(Leaf())
    list(model.named_modules())
    model[0].w = Parameter(np.ones(3))
    model[0].register_buffer("stat", np.zeros(1))
    assert [p.shape for p in model.parameters()] == [(3,)]
    assert [n for n, _ in model.named_buffers()] == ["0.stat"]


def test_prefix_and_switch(monkeypatch):
    model = Sequential(Leaf())
    assert [n for n, _ in model.named_modules("top")] == ["top", "top.0"]
    assert [n for n, _ in model.named_modules()] == ["", "0"]
    monkeypatch.setattr(module_mod, "CACHE_WALKS", False)
    assert [n for n, _ in model.named_modules()] == ["", "0"]
