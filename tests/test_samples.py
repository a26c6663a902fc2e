"""The bundled samples are real test-set images, pixel for pixel, and small."""

import torch

from cnnviz.datasets import files as data
from cnnviz.datasets import samples


def test_bundle_is_small_and_covers_every_class():
    total = sum(p.stat().st_size for p in samples.SAMPLES_DIR.rglob("*.png"))
    assert total < 1_000_000
    for name, info in data.DATASETS.items():
        bundled = samples.list_samples(name)
        counts = torch.bincount(torch.tensor([s.label for s in bundled]), minlength=info.num_classes)
        assert counts.tolist() == [samples.SAMPLES_PER_CLASS] * info.num_classes
        shape = samples.load_sample(bundled[0]).shape
        assert tuple(shape) == info.image_shape


def test_samples_equal_the_test_set_pixels(real_data_dir):
    for name in data.DATASETS:
        test = data.load_dataset(name, "test", real_data_dir, download=False)
        for sample in samples.list_samples(name):
            assert int(test.labels[sample.test_index]) == sample.label
            assert torch.equal(samples.load_sample(sample), test.images[sample.test_index])


def test_export_writes_what_list_reads(real_data_dir, tmp_path):
    written = samples.export_samples(real_data_dir, tmp_path, per_class=1)
    assert len(written) == 20
    mnist = samples.list_samples("mnist", tmp_path)
    assert [s.label for s in mnist] == list(range(10))
    assert mnist[0].caption.startswith("0 (test #")
