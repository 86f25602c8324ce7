"""Datasets: embedded digits, event-digits, CIFAR, MNIST IDX, event streams, augmentation, loader.

Everything here yields plain NumPy arrays (float32 data, int64 labels) and
imports nothing from the model floors (autograd, layers, neurons, training).
Nothing downloads: a missing file is a FileNotFoundError that says which
official files are expected where (docs/datasets.md).

Datasets are loaded by name with :func:`get_dataset`; the per-dataset loader
functions stay in their modules (``hdlif_ref.datasets.digits.digits``), so the
package attribute ``digits`` is the module, not a function of the same name.
"""
from .augment import RandomCropFlip, RandomTranslateFlip
from .base import ArrayDataset
from .cifar import read_cifar_binary, read_cifar_python_batch
from .cifar10_dvs import EventFileDataset
from .errors import DatasetFormatError, UnsafePickleError
from .event_files import read_aedat2, read_events, read_hdf5_events, read_npz_events
from .events import EVENT_DTYPE, bin_events, make_events
from .loader import DataLoader
from .mnist import read_idx
from .registry import DATASETS, dataset_options, get_dataset

__all__ = [
    "ArrayDataset", "DATASETS", "DataLoader", "DatasetFormatError", "EVENT_DTYPE", "EventFileDataset",
    "RandomCropFlip", "RandomTranslateFlip", "UnsafePickleError", "bin_events", "dataset_options", "get_dataset",
    "make_events", "read_aedat2", "read_cifar_binary", "read_cifar_python_batch", "read_events",
    "read_hdf5_events", "read_idx", "read_npz_events",
]
