"""The subcommands' --image reader (emerging/cli/common.py read_image): 8-bit images as the model's uint8 array,
palette images as their colours, 16-bit images and images of another size refused by name."""
import numpy as np
import pytest
from PIL import Image

from emerging.cli.common import read_image
from emerging.errors import InputError


def test_an_rgb_image_is_read_as_it_is(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, [4, 4, 3]).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'rgb.png')
    np.testing.assert_array_equal(read_image(str(tmp_path / 'rgb.png'), (4, 4, 3)), pixels)


def test_a_palette_image_is_read_as_its_colours_not_its_indices(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, [4, 4, 3]).astype(np.uint8)
    Image.fromarray(pixels).quantize(colors=16).save(tmp_path / 'palette.png')
    expected = np.asarray(Image.open(tmp_path / 'palette.png').convert('RGB'))
    read = read_image(str(tmp_path / 'palette.png'), (4, 4, 3))
    np.testing.assert_array_equal(read, expected)
    assert read.max() > 15  # colours, not palette indices 0..15


def test_a_sixteen_bit_image_is_refused_not_wrapped_around(tmp_path):
    Image.fromarray(np.full([4, 4], 1000, np.uint16)).save(tmp_path / 'grey16.png')
    with pytest.raises(InputError, match=r'grey16\.png: a 16-bit .* the model takes 8-bit images'):
        read_image(str(tmp_path / 'grey16.png'), (4, 4, 1))


def test_an_image_of_another_size_or_channel_count_is_named(tmp_path):
    Image.fromarray(np.zeros([6, 5, 3], np.uint8)).save(tmp_path / 'big.png')
    with pytest.raises(InputError, match=r'big\.png is 6x5x3, but the model takes 4x4x3 images'):
        read_image(str(tmp_path / 'big.png'), (4, 4, 3))
    Image.fromarray(np.zeros([4, 4], np.uint8)).save(tmp_path / 'grey.png')
    with pytest.raises(InputError, match=r'grey\.png is 4x4x1, but the model takes 4x4x3 images'):
        read_image(str(tmp_path / 'grey.png'), (4, 4, 3))
    with pytest.raises(InputError, match='image file not found'):
        read_image(str(tmp_path / 'missing.png'), (4, 4, 3))
