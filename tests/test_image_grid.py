"""PNG grids: the [-1, 1] -> 0..255 map (no clipping of negative pixels), tiling, file modes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from occamgan.pixels import to_model_range
from occamgan.image_grid import grid_array, save_image_grid, save_images, to_uint8


def test_pixel_map_endpoints_midpoint_and_negative_values():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 2.0]).view(1, 1, 1, 7)
    # 127.5 (x + 1): 0, 63.75, 127.5, 191.25, 255, clamped below 0 and above 255
    assert to_uint8(x).flatten().tolist() == [0, 64, 128, 191, 255, 0, 255]


def test_negative_pixels_are_not_clipped_to_black():
    x = torch.full((1, 1, 2, 2), -0.6)
    assert (to_uint8(x) == 51).all()  # 127.5 * 0.4 = 51; the authors' code wrote 0 here


def test_round_trip_with_the_data_scaling_is_exact():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    assert np.array_equal(to_uint8(to_model_range(u)), u)


def test_grid_layout_and_padding():
    imgs = torch.stack([torch.full((3, 4, 5), v) for v in (-1.0, 0.0, 1.0)])
    grid = grid_array(imgs, nrow=2, padding=1)
    assert grid.shape == (1 + 2 * (4 + 1), 1 + 2 * (5 + 1), 3)
    assert (grid[1:5, 1:6] == 0).all() and (grid[1:5, 7:12] == 128).all() and (grid[6:10, 1:6] == 255).all()
    assert (grid[0] == 0).all() and (grid[6:10, 7:12] == 0).all()  # padding and the empty slot


def test_default_grid_is_near_square():
    assert grid_array(torch.zeros(10, 1, 3, 3), padding=0).shape == (3 * 3, 4 * 3, 1)


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB")])
def test_saved_png_has_the_right_mode_and_pixels(tmp_path, channels, mode):
    torch.manual_seed(0)
    imgs = torch.rand(4, channels, 6, 6) * 2 - 1
    path = save_image_grid(imgs, tmp_path / "sub" / "grid.png", nrow=2, padding=0)
    with Image.open(path) as img:
        assert img.mode == mode and img.size == (12, 12)
        back = np.array(img).reshape(12, 12, channels)
    assert np.array_equal(back[:6, 6:], to_uint8(imgs[1:2])[0])


def test_save_images_writes_one_png_per_sample(tmp_path):
    imgs = torch.linspace(-1, 1, 3).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    paths = save_images(imgs, tmp_path, start=5)
    assert [p.name for p in paths] == ["000005.png", "000006.png", "000007.png"]
    with Image.open(paths[1]) as img:
        assert np.array(img).tolist() == [[128, 128], [128, 128]]


def test_rejects_non_image_tensors():
    with pytest.raises(ValueError, match="N, C, H, W"):
        to_uint8(torch.zeros(3, 2))
