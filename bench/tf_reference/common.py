"""Shared helpers for the TFRS reference runs (data loading, threading, output)."""
import json
import os
import sys

# TFRS 0.7.7 calls tf.keras.*; with TF >= 2.16 that is Keras 3 unless the legacy flag is set,
# which makes tf.keras resolve to tf_keras (Keras 2). Must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = "/work/shared/data/ml-100k-split42"
RESULTS = os.environ.get("TF_RESULTS", os.path.join(HERE, "results"))


def set_threads(n=2):
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def read_tsv(path):
    """Returns (user_ids, item_ids, ratings) as numpy arrays of raw integer ids / float ratings."""
    arr = np.loadtxt(path, delimiter="\t", skiprows=1, dtype=np.int64)
    return arr[:, 0], arr[:, 1], arr[:, 2].astype(np.float32)


def load_split(data_dir):
    train = read_tsv(os.path.join(data_dir, "train.tsv"))
    test = read_tsv(os.path.join(data_dir, "test.tsv"))
    # Vocabularies over the whole split (as the tutorials build them over all ratings):
    # 943 users, 1682 items; sorted by numeric id so "item index" = position in this list.
    users = np.unique(np.concatenate([train[0], test[0]]))
    items = np.unique(np.concatenate([train[1], test[1]]))
    return train, test, users, items


def as_str(a):
    return np.array([str(x) for x in a])


def versions():
    import tf_keras
    import tensorflow_recommenders as tfrs
    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
            "tf.keras": tf.keras.__name__, "tfrs": tfrs.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def emit(obj):
    print(json.dumps(obj), flush=True)


def write_result(name, obj):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    print(f"wrote {path}", flush=True)
