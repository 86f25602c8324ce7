"""It learns: HD-LIF with online training (SPEC E16, K = 1) on the embedded digits."""
import time

import numpy as np
import pytest

from hdlif_ref.datasets import DataLoader
from hdlif_ref.datasets.base import ArrayDataset
from hdlif_ref.models import digits_net
from hdlif_ref.training import Adam, param_groups
from hdlif_ref.training.trainer import OnlineTrainer


def digits_or_synthetic():
    """sklearn's digits; without scikit-learn, a deterministic synthetic 10-class 8x8 task."""
    try:
        from hdlif_ref.datasets import get_dataset
        return get_dataset("digits", "train"), get_dataset("digits", "test")
    except ImportError:
        rng = np.random.default_rng(0)
        prototypes = rng.standard_normal((10, 1, 8, 8))
        def split(n):
            y = rng.integers(0, 10, n)
            x = prototypes[y] + 0.8 * rng.standard_normal((n, 1, 8, 8))
            return ArrayDataset(x.astype(np.float32), y.astype(np.int64), num_classes=10, kind="static",
                                name="synthetic", split="train")
        return split(1400), split(400)


@pytest.mark.slow
def test_hdlif_online_k1_reaches_90_percent_on_digits():
    train_set, test_set = digits_or_synthetic()
    model = digits_net(T=4, neuron="hdlif", rng=np.random.default_rng(0))
    trainer = OnlineTrainer(model, Adam(param_groups(model, 0.0), lr=3e-3), steps=1,
                            rng=np.random.default_rng(1))
    train = DataLoader(train_set, 64, shuffle=True, seed=0)
    start = time.perf_counter()
    for epoch in range(3):
        trainer.train_epoch(train)
    result = trainer.evaluate(DataLoader(test_set, 256))
    print(f"test accuracy after 3 epochs: {result.accuracy:.3f} ({time.perf_counter() - start:.1f} s)")
    assert result.accuracy >= 0.90
