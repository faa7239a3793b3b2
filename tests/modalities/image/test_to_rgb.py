"""to_rgb: every PIL mode and numpy dtype -> 8-bit RGB by the documented rules, each pixel computed by hand."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from multissl.modalities.image.transforms import to_rgb


def px(image, xy=(0, 0)):
    """One pixel of the converted image as an RGB tuple (and the result must be RGB)."""
    out = to_rgb(image)
    assert out.mode == "RGB"
    return out.getpixel(xy)


def over_white(c, a):
    """The compositing formula, written out: c * a/255 + 255 * (1 - a/255), rounded."""
    return round(c * a / 255 + 255 * (1 - a / 255))


# ---- PIL modes -------------------------------------------------------------------------------

def test_rgb_is_returned_unchanged():
    im = Image.new("RGB", (3, 2), (1, 2, 3))
    assert to_rgb(im) is im


def test_mode_1_and_l():
    assert px(Image.new("1", (2, 2), 1)) == (255, 255, 255)
    assert px(Image.new("1", (2, 2), 0)) == (0, 0, 0)
    assert px(Image.new("L", (2, 2), 77)) == (77, 77, 77)


def _palette_image(transparent=None):
    im = Image.new("P", (2, 1), 1)
    im.putpalette([0, 0, 0, 10, 20, 30, 200, 100, 50] + [0] * 759)
    im.putpixel((1, 0), 2)
    if transparent is not None:
        im.info["transparency"] = transparent
    return im


def test_palette_without_and_with_transparency():
    im = _palette_image()
    assert px(im, (0, 0)) == (10, 20, 30) and px(im, (1, 0)) == (200, 100, 50)
    im = _palette_image(transparent=2)  # index 2 fully transparent -> white, index 1 opaque
    assert px(im, (0, 0)) == (10, 20, 30) and px(im, (1, 0)) == (255, 255, 255)
    buf = io.BytesIO()  # the same through a real PNG file (tRNS chunk)
    im.save(buf, format="PNG")
    reopened = Image.open(io.BytesIO(buf.getvalue()))
    assert reopened.mode == "P" and px(reopened, (1, 0)) == (255, 255, 255)


def test_rgba_composited_over_white():
    im = Image.new("RGBA", (3, 1))
    im.putdata([(200, 100, 0, 128), (9, 9, 9, 0), (9, 8, 7, 255)])
    assert px(im, (0, 0)) == (over_white(200, 128), over_white(100, 128), over_white(0, 128)) == (227, 177, 127)
    assert px(im, (1, 0)) == (255, 255, 255)  # fully transparent -> white, not the hidden colour
    assert px(im, (2, 0)) == (9, 8, 7)  # opaque -> untouched


def test_alpha_compositing_matches_the_formula_for_every_colour_and_alpha():
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")  # every (colour, alpha) pair
    rgba = np.stack([c, 255 - c, c // 2, a], -1).astype(np.uint8)
    got = np.asarray(to_rgb(rgba)).astype(np.int64)
    alpha = a / 255.0
    want = np.floor(rgba[..., :3] * alpha[..., None] + 255 * (1 - alpha[..., None]) + 0.5)
    assert np.array_equal(got, want)


def test_la_pa_rgba_premultiplied_and_l_with_transparent_colour():
    assert px(Image.new("LA", (1, 1), (60, 51))) == (216,) * 3 == (over_white(60, 51),) * 3
    assert px(Image.new("LA", (1, 1), (60, 0))) == (255, 255, 255)
    pa = _palette_image().convert("PA")
    pa.putpixel((0, 0), (1, 51))
    assert px(pa) == (over_white(10, 51), over_white(20, 51), over_white(30, 51))
    # premultiplied: stored (50, 50, 50, 128) is colour 50 * 255/128 ~ 99 at alpha 128
    assert px(Image.new("RGBa", (1, 1), (50, 50, 50, 128))) == (over_white(99, 128),) * 3
    assert px(Image.new("La", (1, 1), (50, 128))) == (over_white(99, 128),) * 3
    gray = Image.new("L", (2, 1), 7)
    gray.putpixel((1, 0), 8)
    gray.info["transparency"] = 7
    assert px(gray, (0, 0)) == (255, 255, 255) and px(gray, (1, 0)) == (8, 8, 8)


def test_cmyk_naive_conversion():
    # R = (255 - C) * (255 - K) / 255, etc.
    assert px(Image.new("CMYK", (1, 1), (51, 102, 0, 100))) == (204 * 155 // 255, 153 * 155 // 255, 155)
    assert px(Image.new("CMYK", (1, 1), (0, 255, 0, 0))) == (255, 0, 255)


def test_ycbcr_jpeg_matrix():
    y, cb, cr = 100, 90, 160
    want = (y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128))
    got = px(Image.new("YCbCr", (1, 1), (y, cb, cr)))
    assert all(abs(g - w) <= 1 for g, w in zip(got, want))  # Pillow's fixed-point matrix: within 1 level


def test_lab_gray_and_white():
    lstar = 128 * 100 / 255  # L stored as 0..255, a/b offset by 128 (a = b = 0: neutral)
    lin = ((lstar + 16) / 116) ** 3
    srgb = 255 * (1.055 * lin ** (1 / 2.4) - 0.055)
    got = px(Image.new("LAB", (1, 1), (128, 128, 128)))
    assert all(abs(g - srgb) <= 1.5 for g in got)  # ~119
    assert all(g >= 254 for g in px(Image.new("LAB", (1, 1), (255, 128, 128))))


def test_hsv():
    assert px(Image.new("HSV", (1, 1), (0, 255, 255))) == (255, 0, 0)
    assert px(Image.new("HSV", (1, 1), (85, 255, 255))) == (0, 255, 0)  # 85/255 * 360 = 120 degrees
    assert px(Image.new("HSV", (1, 1), (170, 255, 128))) == (0, 0, 128)
    assert px(Image.new("HSV", (1, 1), (42, 0, 90))) == (90, 90, 90)  # no saturation -> gray at V


@pytest.mark.parametrize("mode,dtype", [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2")])
def test_16bit_modes_scale_full_range_not_clip(mode, dtype):
    values = np.array([[65535, 32768, 257, 128, 129, 0]], dtype=dtype)
    im = Image.frombytes(mode, (6, 1), values.tobytes())
    assert im.mode == mode
    got = [to_rgb(im).getpixel((x, 0))[0] for x in range(6)]
    assert got == [255, 128, 1, 0, 1, 0]  # round(v / 257); Pillow's convert would give 255 for all but 0


def test_16bit_png_file_round_trip():
    buf = io.BytesIO()
    Image.fromarray(np.array([[65535, 32768, 1000]], np.uint16)).save(buf, format="PNG")
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.mode.startswith("I")
    assert [to_rgb(im).getpixel((x, 0))[0] for x in range(3)] == [255, 128, 4]  # 1000/257 = 3.89


def test_mode_i_32bit():
    def first_row(values):
        im = Image.fromarray(np.array([values], np.int32))
        assert im.mode == "I"
        return [to_rgb(im).getpixel((x, 0))[0] for x in range(len(values))]

    assert first_row([0, 200, 255]) == [0, 200, 255]  # 8-bit values kept
    assert first_row([0, 32768, 65535]) == [0, 128, 255]  # 16-bit data held in 32 bits
    assert first_row([-1000, 0, 1000]) == [0, 128, 255]  # no conventional range: min-max per image


def test_mode_f_float():
    def first_row(values):
        im = Image.fromarray(np.array([values], np.float32))
        assert im.mode == "F"
        return [to_rgb(im).getpixel((x, 0))[0] for x in range(len(values))]

    assert first_row([0.0, 0.5, 1.0, 0.2]) == [0, 128, 255, 51]  # [0, 1] -> round(v * 255)
    assert first_row([-1.0, 1.0, 3.0]) == [0, 128, 255]  # outside [0, 1]: min-max per image
    assert first_row([5.0, 5.0]) == [0, 0]  # constant and out of range: black
    with pytest.raises(ValueError, match=r"^image: image holds NaN"):
        to_rgb(Image.fromarray(np.array([[0.1, np.nan]], np.float32)))


# ---- arrays ----------------------------------------------------------------------------------

def test_uint8_layouts():
    assert px(np.full((2, 3), 9, np.uint8)) == (9, 9, 9)
    assert px(np.full((2, 3, 1), 9, np.uint8)) == (9, 9, 9)
    assert px(np.full((2, 3, 3), (1, 2, 3), np.uint8)) == (1, 2, 3)
    assert to_rgb(np.zeros((2, 3, 3), np.uint8)).size == (3, 2)  # PIL size is (W, H)
    rgba = np.array([[[200, 100, 0, 128], [5, 5, 5, 0]]], np.uint8)
    out = to_rgb(rgba)
    assert out.getpixel((0, 0)) == (227, 177, 127) and out.getpixel((1, 0)) == (255, 255, 255)


def test_uint16_arrays_scale_not_clip():
    arr = np.array([[[65535, 32768, 0], [200, 257, 514]]], np.uint16)
    out = to_rgb(arr)
    assert out.getpixel((0, 0)) == (255, 128, 0)
    assert out.getpixel((1, 0)) == (1, 1, 2)  # uint16 is 16-bit data even when small: 200/257 = 0.78
    assert px(np.array([[65535]], ">u2")) == (255, 255, 255)  # big-endian too


def test_bool_array():
    out = to_rgb(np.array([[True, False]]))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (0, 0, 0)


def test_wider_integer_arrays_and_nested_lists():
    assert px(np.array([[0, 200]], np.int64), (1, 0)) == (200,) * 3  # 0..255 kept
    assert px([[0, 200], [255, 3]], (1, 0)) == (200,) * 3  # nested lists (an Array2D column) -> int64
    assert px(np.array([[0, 32768, 65535]], np.int32), (1, 0)) == (128,) * 3  # 0..65535 -> / 257
    assert px(np.array([[7]], np.int8)) == (7, 7, 7)
    with pytest.raises(ValueError, match=r"^row 3: integer pixel values span -5\.\.300; expected 0\.\.255"):
        to_rgb(np.array([[-5, 300]], np.int64), field="row 3")
    with pytest.raises(ValueError, match=r"span 0\.\.70000"):
        to_rgb(np.array([[0, 70000]], np.int64))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays(dtype):
    out = to_rgb(np.array([[0.0, 0.5, 1.0, 0.2]], dtype))
    assert [out.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 51]
    with pytest.raises(ValueError, match=r"^pix: float pixel values span 0\.\.255; expected floats in \[0, 1\].*uint8"):
        to_rgb(np.array([[0.0, 255.0]], dtype), field="pix")
    with pytest.raises(ValueError, match=r"span -1\.5\.\.0\.5"):
        to_rgb(np.array([[-1.5, 0.5]], dtype))


def test_float_rgba_array_alpha_over_white():
    out = to_rgb(np.array([[[1.0, 0.0, 0.0, 0.2]]], np.float32))  # alpha 0.2 -> 51
    assert out.getpixel((0, 0)) == (255, over_white(0, 51), over_white(0, 51))


def test_chw_transposed_only_when_unambiguous():
    chw = np.zeros((3, 5, 6), np.uint8)
    chw[0], chw[1], chw[2] = 10, 20, 30
    out = to_rgb(chw)
    assert out.size == (6, 5) and out.getpixel((5, 4)) == (10, 20, 30)
    gray = np.full((1, 5, 6), 40, np.uint8)
    assert to_rgb(gray).size == (6, 5) and px(gray) == (40, 40, 40)
    tied = np.zeros((3, 4, 4), np.uint8)  # 3x4 RGBA or 3-channel 4x4? HxWxC wins
    assert to_rgb(tied).size == (4, 3)
    tensor = torch.full((3, 2, 7), 0.5)  # a torch CHW float tensor in [0, 1]
    assert to_rgb(tensor).size == (7, 2) and px(tensor) == (128, 128, 128)
    assert px(torch.full((3, 2, 7), 0.5, requires_grad=True)) == (128, 128, 128)
    assert px(torch.full((2, 7, 3), 0.5, dtype=torch.bfloat16)) == (128, 128, 128)


# ---- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value,pattern", [
    (None, r"^img: missing image \(None\)$"),
    (np.zeros(5, np.uint8), r"^img: array of shape \(5,\) has 1 dimensions; expected an HxW, HxWxC or CxHxW"),
    (np.zeros((2, 2, 2, 3), np.uint8), r"^img: array of shape \(2, 2, 2, 3\) has 4 dimensions"),
    (np.zeros((4, 4, 2), np.uint8), r"^img: array of shape \(4, 4, 2\) has 2 channels; expected .*'LA'"),
    (np.zeros((5, 6, 7), np.uint8), r"^img: array of shape \(5, 6, 7\) has no channel axis of size 1, 3 or 4"),
    (np.zeros((0, 4, 3), np.uint8), r"^img: empty image array of shape \(0, 4, 3\)"),
    ([], r"^img: empty image array"),
    (np.array([[0.5, np.nan]]), r"^img: image holds NaN or infinite values"),
    (np.array([[0.5, np.inf]], np.float32), r"^img: image holds NaN or infinite"),
    (np.array([["a", "b"]]), r"^img: expected a PIL image or .*dtype <U1"),
    ([[1, 2], [3]], r"^img: expected a PIL image or .*got list"),
    ("not an image", r"^img: expected a PIL image or .*got str"),
    (Image.new("RGB", (0, 3)), r"^img: empty image \(0x3\)"),
])
def test_bad_input_is_one_clear_value_error(value, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        to_rgb(value, field="img")
    assert "\n" not in str(info.value)


def test_min_size_and_truncated_file():
    with pytest.raises(ValueError, match=r"^row 0: image is 3x2, smaller than the required 4x4"):
        to_rgb(np.zeros((2, 3), np.uint8), field="row 0", min_size=4)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    truncated = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 2]))  # header reads, pixels do not
    with pytest.raises(ValueError, match=r"^row 1: cannot decode the image"):
        to_rgb(truncated, field="row 1")
