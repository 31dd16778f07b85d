"""The ``jax-scc`` command: formats, folders, options, bad input, outputs, devices.

Images are 48x40 crops of scikit-image's photographs (grey: camera; colour:
astronaut), written to ``tmp_path`` in every supported format. Scores are
checked against :func:`jax_scc.spatial_correlation_coefficient` on the same
arrays (``pred[None], target[None]`` in NHWC) to 1e-6. Most runs call
``jax_scc.cli.main`` in-process (compiled functions are shared between tests);
two runs are subprocesses: ``python -m jax_scc`` on four forced CPU devices,
and the check that ``import jax_scc`` stays free of the image readers.
"""

import functools
import io
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

import jax_scc
from jax_scc import _cli_io, cli, scc_map, spatial_correlation_coefficient

H, W = 48, 40
REPO = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def _photos():
    """(grey target, grey pred, rgb target, rgb pred) as uint8 crops."""
    from skimage import data

    rng = np.random.default_rng(0)
    grey = data.camera()[100 : 100 + H, 220 : 220 + W]
    rgb = data.astronaut()[60 : 60 + H, 200 : 200 + W]

    def degrade(img):
        noisy = img.astype(np.float64) + rng.normal(0, 12, img.shape)
        noisy = 0.5 * noisy + 0.5 * np.roll(noisy, 1, axis=1)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)

    return grey, degrade(grey), rgb, degrade(rgb)


def reference(pred, target, **kwargs) -> float:
    """The functional API's score of one (H, W) or (H, W, C) pair.

    Integer images are passed as float32 holding the same values: the function
    computes integers in float32 anyway, and one dtype compiles once.
    """
    p, t = (np.asarray(a, np.float32)[None] for a in (pred, target))
    return float(spatial_correlation_coefficient(p, t, data_format="NHWC", **kwargs))


def run(capsys, *argv):
    """Runs the command in-process; returns (exit status, stdout, stderr lines)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line]


def write_png16(path, img):
    """A 16-bit colour PNG (Pillow cannot write one); row y uses filter type y % 5."""
    h, w, c = img.shape
    bpp = 2 * c
    raw = img.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int32)
    zeros = np.zeros(bpp, np.int32)
    rows = []
    for y in range(h):
        kind, x = y % 5, raw[y]
        up = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([zeros, x[:-bpp]])
        upleft = np.concatenate([zeros, up[:-bpp]])
        if kind == 0:
            f = x
        elif kind == 1:
            f = x - left
        elif kind == 2:
            f = x - up
        elif kind == 3:
            f = x - (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            f = x - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        rows.append(bytes([kind]) + (f % 256).astype(np.uint8).tobytes())

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """A pred and a target folder holding one pair per supported format.

    Returns (pred_dir, target_dir, {relative name: (pred array, target array)}),
    the arrays being what the command should score (alpha dropped).
    """
    root = tmp_path_factory.mktemp("formats")
    pred_dir, target_dir = root / "pred", root / "target"
    (pred_dir / "sub").mkdir(parents=True)
    (target_dir / "sub").mkdir(parents=True)
    grey_t, grey_p, rgb_t, rgb_p = _photos()
    rng = np.random.default_rng(1)
    to16 = lambda a: a.astype(np.uint16) * 257 + rng.integers(0, 257, a.shape, dtype=np.uint16)
    alpha = np.full((H, W, 1), 255, np.uint8)
    expected = {}

    def pair(name, p, t, write, scored=None):
        write(pred_dir / name, p)
        write(target_dir / name, t)
        expected[name] = scored or (p, t)

    pair("grey8.png", grey_p, grey_t, iio.imwrite)
    pair("sub/grey16.png", to16(grey_p), to16(grey_t), iio.imwrite)
    pair("rgb8.png", rgb_p, rgb_t, iio.imwrite)
    pair("rgba8.png", np.dstack([rgb_p, alpha]), np.dstack([rgb_t, alpha]), iio.imwrite,
         scored=(rgb_p, rgb_t))
    p16, t16 = to16(rgb_p), to16(rgb_t)
    pair("rgba16.png", np.dstack([p16, p16[..., :1]]), np.dstack([t16, t16[..., :1]]),
         write_png16, scored=(p16, t16))
    pair("float.tif", grey_p.astype(np.float32) / 255, grey_t.astype(np.float32) / 255,
         tifffile.imwrite)
    pair("grey16.tiff", to16(grey_p), to16(grey_t), tifffile.imwrite)
    pair("rgb.npy", rgb_p.astype(np.float32), rgb_t.astype(np.float32), np.save)
    # JPEG is lossy: the command scores what the decoder gives back.
    iio.imwrite(pred_dir / "rgb.jpg", rgb_p, quality=90)
    iio.imwrite(target_dir / "rgb.jpg", rgb_t, quality=90)
    expected["rgb.jpg"] = (iio.imread(pred_dir / "rgb.jpg"), iio.imread(target_dir / "rgb.jpg"))
    (pred_dir / "notes.txt").write_text("not an image: ignored")
    (target_dir / ".hidden.png").write_bytes(b"hidden: ignored")
    return pred_dir, target_dir, expected


def test_every_format_scores_like_the_function(formats, capsys):
    pred_dir, target_dir, expected = formats
    status, out, err = run(capsys, "--json", pred_dir, target_dir)
    assert (status, err) == (0, [])
    doc = json.loads(out)
    got = {Path(im["pred"]).relative_to(pred_dir).as_posix(): im for im in doc["images"]}
    assert sorted(got) == sorted(expected)
    for name, (p, t) in expected.items():
        assert got[name]["target"] == str(target_dir / name)
        assert got[name]["scc"] == pytest.approx(reference(p, t), abs=1e-6), name
    assert doc["count"] == len(expected)
    assert doc["mean"] == pytest.approx(np.mean([im["scc"] for im in doc["images"]]), abs=1e-7)
    assert doc["errors"] == []
    # The 16-bit colour PNG keeps every bit (Pillow alone keeps only the high byte).
    p16 = expected["rgba16.png"][0]
    np.testing.assert_array_equal(_cli_io.read_image(str(pred_dir / "rgba16.png")), p16)


def test_two_files_print_one_number(formats, capsys):
    pred_dir, target_dir, expected = formats
    status, out, err = run(capsys, pred_dir / "rgb8.png", target_dir / "rgb8.png")
    assert (status, err) == (0, [])
    assert out.count("\n") == 1
    assert float(out) == pytest.approx(reference(*expected["rgb8.png"]), abs=1e-6)


def test_folder_in_padded_batches_prints_the_mean(tmp_path, capsys):
    """Five pairs in batches of four: a full batch and a padded last one.

    (The same (4, 48, 40) batch as the grey group of the formats folder: one compilation.)
    """
    grey_t, grey_p, _, _ = _photos()
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    scores = []
    for k in range(5):
        p, t = np.roll(grey_p, 3 * k, axis=0), np.roll(grey_t, 3 * k, axis=0)
        iio.imwrite(tmp_path / "p" / f"{k}.png", p)
        iio.imwrite(tmp_path / "t" / f"{k}.png", t)
        scores.append(reference(p, t))
    status, out, err = run(capsys, "--batch-size", 4, tmp_path / "p", tmp_path / "t")
    assert (status, err) == (0, [])
    assert float(out) == pytest.approx(np.mean(scores), abs=1e-6)


def test_npy_channels_first_with_data_format(tmp_path, capsys):
    _, _, rgb_t, rgb_p = _photos()
    np.save(tmp_path / "p.npy", np.moveaxis(rgb_p, -1, 0))
    np.save(tmp_path / "t.npy", np.moveaxis(rgb_t, -1, 0))
    status, out, _ = run(capsys, "--data-format", "NCHW", tmp_path / "p.npy", tmp_path / "t.npy")
    assert status == 0
    assert float(out) == pytest.approx(reference(rgb_p, rgb_t), abs=1e-6)


def test_window_size_and_hp_filter_options(formats, capsys):
    pred_dir, target_dir, expected = formats
    laplace4 = [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]
    for literal in ("[[0,-1,0],[-1,4,-1],[0,-1,0]]", "((0, -1, 0), (-1, 4, -1), (0, -1, 0))",
                    "[[ 0 -1  0]\n [-1  4 -1]\n [ 0 -1  0]]"):
        assert cli.parse_hp_filter(literal) == tuple(tuple(map(float, r)) for r in laplace4)
    status, out, _ = run(capsys, "-w", 5, "--hp-filter", "[[0,-1,0],[-1,4,-1],[0,-1,0]]",
                         pred_dir / "grey8.png", target_dir / "grey8.png")
    assert status == 0
    p, t = expected["grey8.png"]
    assert float(out) == pytest.approx(reference(p, t, window_size=5, hp_filter=laplace4), abs=1e-6)


def test_nan_pixels_score_nan_unless_ignored(tmp_path, capsys):
    grey_t, grey_p, _, _ = _photos()
    p = grey_p.astype(np.float32)
    p[5:9, 5:9] = np.nan
    t = grey_t.astype(np.float32)
    tifffile.imwrite(tmp_path / "p.tif", p)
    tifffile.imwrite(tmp_path / "t.tif", t)
    status, out, err = run(capsys, "--json", tmp_path / "p.tif", tmp_path / "t.tif")
    assert status == 0
    assert json.loads(out)["images"][0]["scc"] is None  # NaN, written as null
    assert len(err) == 1 and "scored NaN" in err[0] and "--ignore-nans" in err[0]
    status, out, err = run(capsys, "--ignore-nans", tmp_path / "p.tif", tmp_path / "t.tif")
    assert (status, err) == (0, [])
    assert float(out) == pytest.approx(reference(p, t, ignore_nans=True), abs=1e-6)


def test_ignore_flat_is_passed_through(tmp_path, capsys):
    grey_t, _, _, _ = _photos()
    t = grey_t.copy()
    t[:, :20] = 100  # flat half: excluded from the mean with --ignore-flat
    iio.imwrite(tmp_path / "t.png", t)
    status, out, _ = run(capsys, "--ignore-flat", tmp_path / "t.png", tmp_path / "t.png")
    assert status == 0
    assert float(out) == pytest.approx(reference(t, t, ignore_flat=True), abs=1e-6)
    assert float(out) == pytest.approx(1.0, abs=1e-6)


# --- bad input ------------------------------------------------------------------------------


def _bad_file_cases(root: Path):
    grey_t, grey_p, rgb_t, _ = _photos()
    iio.imwrite(root / "good.png", grey_t)
    iio.imwrite(root / "good_pred.png", grey_p)
    iio.imwrite(root / "rgb.png", rgb_t)
    (root / "garbage.png").write_bytes(b"this is not a PNG file")
    data = (root / "good.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    np.save(root / "stack.npy", np.zeros((2, 2, H, W)))
    tifffile.imwrite(root / "stack.tif", np.zeros((3, H, W), np.uint16), photometric="minisblack")
    iio.imwrite(root / "tiny.png", grey_t[:6, :6])
    return {
        "missing file": ("nothere.png", "good.png", "nothere.png", "no such file"),
        "not an image": ("garbage.png", "good.png", "garbage.png", "not a readable image"),
        "truncated image": ("truncated.png", "good.png", "truncated.png", "not a readable image"),
        "mismatched shapes": ("good_pred.png", "rgb.png", "good_pred.png", "shape differs"),
        "4-D array": ("stack.npy", "good.png", "stack.npy", "must be 2-D"),
        "TIFF stack": ("stack.tif", "good.png", "stack.tif", "one 2-D image"),
        "image smaller than the window": ("tiny.png", "tiny.png", "tiny.png", "window"),
        "unsupported type": ("good.png", "notes.txt", "notes.txt", "unsupported file type"),
    }


def test_definition_option_selects_the_remote_sensing_scc(formats, tmp_path, capsys):
    """--definition toolbox / zhou score like pansharpening_scc / global_scc;
    the toolbox's map is its cropped per-pixel map."""
    pred_dir, target_dir, expected = formats
    p, t = (np.asarray(a, np.float32)[None] for a in expected["rgb8.png"])
    args = (pred_dir / "rgb8.png", target_dir / "rgb8.png")
    status, out, _ = run(capsys, "--definition", "toolbox", "--map", tmp_path / "maps", *args)
    assert status == 0
    assert float(out) == pytest.approx(float(jax_scc.pansharpening_scc(p, t, data_format="NHWC")), abs=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "maps" / "rgb8.png.scc.npy"),
                               jax_scc.pansharpening_scc_map(p, t, data_format="NHWC")[0], atol=1e-7)
    status, out, _ = run(capsys, "--definition", "zhou", *args)
    assert status == 0
    assert float(out) == pytest.approx(float(jax_scc.global_scc(p, t, data_format="NHWC")), abs=1e-6)
    status, _, err = run(capsys, "--definition", "zhou", "--ignore-flat", *args)
    assert status == 2 and "--ignore-flat" in err[0]


@pytest.mark.parametrize(
    "case",
    ["missing file", "not an image", "truncated image", "mismatched shapes", "4-D array",
     "TIFF stack", "image smaller than the window", "unsupported type"],
)
def test_bad_file_pair_exits_2_with_one_line(tmp_path, capsys, case):
    (tmp_path / "notes.txt").write_text("text")
    pred, target, named, what = _bad_file_cases(tmp_path)[case]
    status, out, err = run(capsys, tmp_path / pred, tmp_path / target)
    assert (status, out) == (2, "")
    assert len(err) == 1
    assert str(tmp_path / named) in err[0] and what in err[0], err[0]


def test_folder_with_bad_pairs_scores_the_good_ones(tmp_path, capsys):
    """Corrupt, mismatched and unpaired files are reported; the rest is scored."""
    grey_t, grey_p, rgb_t, _ = _photos()
    p_dir, t_dir = tmp_path / "p", tmp_path / "t"
    p_dir.mkdir()
    t_dir.mkdir()
    for name in ("a.png", "b.png"):
        iio.imwrite(p_dir / name, grey_p)
        iio.imwrite(t_dir / name, grey_t)
    (p_dir / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    iio.imwrite(t_dir / "corrupt.png", grey_t)
    iio.imwrite(p_dir / "shape.png", grey_p)
    iio.imwrite(t_dir / "shape.png", rgb_t)
    iio.imwrite(p_dir / "only_pred.png", grey_p)
    iio.imwrite(t_dir / "only_target.png", grey_t)
    csv_path = tmp_path / "scores.csv"
    status, out, err = run(capsys, "--json", "--csv", csv_path, p_dir, t_dir)
    assert status == 2
    doc = json.loads(out)
    score = reference(grey_p, grey_t)
    assert doc["count"] == 2 and doc["mean"] == pytest.approx(score, abs=1e-6)
    assert [Path(im["pred"]).name for im in doc["images"]] == ["a.png", "b.png"]
    errors = {Path(e["pred"] or e["target"]).name: e for e in doc["errors"]}
    assert sorted(errors) == ["corrupt.png", "only_pred.png", "only_target.png", "shape.png"]
    assert errors["only_pred.png"]["target"] is None
    assert errors["only_target.png"]["pred"] is None and "unpaired" in errors["only_target.png"]["error"]
    assert len(err) == 4  # one line per bad pair, each naming its file
    for line, e in zip(err, doc["errors"]):
        assert line == f"jax-scc: error: {e['error']}"
        assert str(e["pred"] or e["target"]) in line
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "pred,target,scc,error"
    assert len(rows) == 1 + 6  # one row per pair, good or bad
    good = [r for r in rows[1:] if r.split(",")[2]]
    assert len(good) == 2 and float(good[0].split(",")[2]) == pytest.approx(score, abs=1e-6)


def test_empty_folder_exits_2(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    iio.imwrite(tmp_path / "t" / "a.png", _photos()[0])
    status, out, err = run(capsys, tmp_path / "p", tmp_path / "t")
    assert (status, out) == (2, "")
    assert len(err) == 1 and str(tmp_path / "p") in err[0] and "no image files" in err[0]


def test_usage_errors_exit_2(tmp_path, capsys):
    iio.imwrite(tmp_path / "a.png", _photos()[0])
    for argv in (["--hp-filter", "[[1, 2], [3]]", tmp_path / "a.png", tmp_path / "a.png"],
                 ["--window-size", "0", tmp_path / "a.png", tmp_path / "a.png"],
                 [tmp_path / "a.png"],
                 [tmp_path / "a.png", tmp_path]):
        status, out, err = run(capsys, *argv)
        assert (status, out) == (2, ""), argv
        assert err[-1].startswith("jax-scc: error:"), argv


def test_missing_readers_name_the_extra(formats, capsys, monkeypatch):
    pred_dir, target_dir, _ = formats
    monkeypatch.setitem(sys.modules, "imageio.v3", None)
    status, out, err = run(capsys, pred_dir / "grey8.png", target_dir / "grey8.png")
    assert (status, out) == (2, "")
    assert len(err) == 1 and 'pip install "jax_scc[cli]"' in err[0]


# --- outputs --------------------------------------------------------------------------------


def test_map_saves_npy_and_png(formats, tmp_path, capsys):
    pred_dir, target_dir, expected = formats
    maps = tmp_path / "maps"
    status, _, err = run(capsys, "--map", maps, pred_dir / "rgb8.png", target_dir / "rgb8.png")
    assert (status, err) == (0, [])
    saved = np.load(maps / "rgb8.png.scc.npy")
    p, t = expected["rgb8.png"]
    want = np.asarray(scc_map(p[None].astype(np.float32), t[None].astype(np.float32),
                              data_format="NHWC"))[0]
    assert saved.shape == (H, W, 3) and saved.dtype == np.float32
    np.testing.assert_allclose(saved, want, atol=1e-6)
    png = iio.imread(maps / "rgb8.png.scc.png")
    assert png.shape[:2] == (H, W)
    assert sorted(os.listdir(maps)) == ["rgb8.png.scc.npy", "rgb8.png.scc.png"]  # no temp files


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with _cli_io.atomic_write(str(path)) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.csv"]
    with _cli_io.atomic_write(str(path)) as f:
        f.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.csv"]


def test_progress_bar_only_on_a_terminal(formats, capsys, monkeypatch):
    pred_dir, target_dir, _ = formats
    status, _, err = run(capsys, pred_dir, target_dir)
    assert (status, err) == (0, [])  # stderr is not a terminal here: no bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert cli.main([str(pred_dir), str(target_dir)]) == 0
    text = term.getvalue()
    n = len(formats[2])
    assert f"0/{n} pairs" in text and "<" in text and "pairs/s" in text  # tqdm: count, ETA, rate
    assert text.rstrip("\x1b[A").rsplit("\r", 1)[-1].strip() == ""  # erased at the end


def test_help_and_version(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "jax-scc PRED_DIR TARGET_DIR" in out and "NOT rescaled" in out
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.split()[:2] == ["jax-scc", jax_scc.__version__]


# --- processes ------------------------------------------------------------------------------


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_importing_jax_scc_and_its_command_loads_no_optional_dependency():
    """The readers load when the command runs; clu, torch and the rest never
    (nor Pallas, which only TPU programs use)."""
    code = (
        "import sys, jax_scc, jax_scc.cli\n"
        "bad = {'imageio', 'tifffile', 'matplotlib', 'PIL', 'clu', 'flax', 'torch', 'skimage',\n"
        "       'chex', 'tqdm', 'jax.experimental.pallas'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), cwd=REPO)


def test_python_m_on_four_devices_matches_one_device(formats, capsys):
    """``python -m jax_scc`` with the batch sharded over 4 CPU devices (padded to 8)."""
    pred_dir, target_dir, _ = formats
    status, out, _ = run(capsys, "--json", pred_dir, target_dir)
    one_device = json.loads(out)
    code = (
        "import jax, runpy, sys\n"
        "assert jax.local_device_count() == 4, jax.local_devices()\n"
        f"sys.argv = ['jax-scc', '--json', {str(pred_dir)!r}, {str(target_dir)!r}]\n"
        "runpy.run_module('jax_scc', run_name='__main__')\n"
    )
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    four = json.loads(proc.stdout)
    assert [im["pred"] for im in four["images"]] == [im["pred"] for im in one_device["images"]]
    for a, b in zip(four["images"], one_device["images"]):
        assert a["scc"] == pytest.approx(b["scc"], abs=1e-6)
    assert math.isclose(four["mean"], one_device["mean"], abs_tol=1e-6)


# --- images of many sizes -------------------------------------------------------------------


def test_mixed_sizes_score_as_alone_in_one_canvas(tmp_path, capsys, monkeypatch):
    """Grey and colour pairs of several sizes: each size is planned into one
    canvas per channel count, every pair scores as the float64 definition of
    the pair alone, and the maps are cropped to each image."""
    import reference as ref

    grey_t, grey_p, rgb_t, rgb_p = _photos()
    sizes = [(48, 40), (30, 40), (48, 17), (20, 20), (33, 29)]
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    expected = {}
    for k, (h, w) in enumerate(sizes):
        for name, (p, t) in ((f"g{k}.png", (grey_p, grey_t)), (f"c{k}.png", (rgb_p, rgb_t))):
            p, t = p[:h, :w], t[:h, :w]
            iio.imwrite(tmp_path / "p" / name, p)
            iio.imwrite(tmp_path / "t" / name, t)
            expected[name] = ref.scc(p[None], t[None], data_format="NHWC" if p.ndim == 3 else "NCHW")
    assert set(cli.plan_canvases(sizes).values()) == {(48, 48)}
    batches = []
    monkeypatch.setattr(cli._Scorer, "_batch_for", lambda self, key, f=cli._Scorer._batch_for: batches.append(f(self, key)) or batches[-1])
    status, out, err = run(capsys, "--json", "--map", tmp_path / "m", tmp_path / "p", tmp_path / "t")
    assert set(batches) == {16}  # the 10 pairs planned in the canvas, to a power of two
    assert (status, err) == (0, [])
    doc = json.loads(out)
    assert doc["count"] == 10
    for im in doc["images"]:
        name = os.path.basename(im["pred"])
        assert im["scc"] == pytest.approx(expected[name], abs=1e-6)
        h, w = sizes[int(name[1])]
        m = np.load(tmp_path / "m" / f"{name}.scc.npy")
        assert m.shape == ((h, w) if name[0] == "g" else (h, w, 3)) and not np.isnan(m).any()


def test_canvas_plan_trades_compilations_for_padding(tmp_path, monkeypatch):
    sizes = [(181, 317)] * 3 + [(442, 172), (256, 256), (1000, 900)]
    one = cli.plan_canvases(sizes, compile_pixels=1 << 40)
    assert set(one.values()) == {(1008, 912)}  # compiling dominates: one canvas, fitted
    own = cli.plan_canvases(sizes, compile_pixels=0)
    assert own == {(181, 317): (192, 320), (442, 172): (448, 176), (256, 256): (256, 256), (1000, 900): (1008, 912)}
    some = cli.plan_canvases(sizes, compile_pixels=1 << 20)
    assert len(set(some.values())) == 2 and some[(1000, 900)] == (1008, 912)
    # The compilation cache: off on request, never a failure where it cannot be written.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("JAX_SCC_NO_CACHE", raising=False)
    folder = cli.compilation_cache_folder(False, None)
    assert folder == str(tmp_path / "cache" / "jax_scc" / "xla") and os.path.isdir(folder)
    assert cli.compilation_cache_folder(False, "/elsewhere") == "/elsewhere"
    assert cli.compilation_cache_folder(True, "/elsewhere") is None
    monkeypatch.setenv("JAX_SCC_NO_CACHE", "1")
    assert cli.compilation_cache_folder(False, None) is None
    monkeypatch.delenv("JAX_SCC_NO_CACHE")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a folder
    assert cli.compilation_cache_folder(False, None) is None
