"""HTML reports of runs and sweeps: the expected sections, every embedded image a valid PNG,
nothing outside the file referenced, file contents escaped, robust to incomplete runs, and the
`occamgan report` command's exits."""
import base64
import csv
import io
import json
import os
import shutil
import statistics
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
from PIL import Image
from typer.testing import CliRunner

import occamgan
import occamgan.commands  # noqa: F401  (registers the commands)
import occamgan.report as report_pkg
from occamgan.cli import app
from occamgan.errors import OccamError, RunDirError
from occamgan.report import check_writable, render_run_report, render_sweep_report, write_report
from occamgan.sweep import run_sweep
from occamgan.train.run_dir import RunDir

TINY = ["train.steps=20", "train.batch_size=32", "model.width=16", "model.depth=1", "data.n_samples=256",
        "eval.n_samples=256", "eval.w2_samples=128", "train.checkpoint_every=10", "train.log_every=5"]
IMAGE = ["data.name=digits", "model.name=dcgan", "model.ngf=8", "model.ndf=8", "data.image_size=16",
         "train.batch_size=16", "train.steps=10", "eval.n_samples=64", "train.checkpoint_every=5", "train.log_every=5"]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A toy run evaluated at two steps (so metrics have curves)."""
    out = tmp_path_factory.mktemp("toy") / "run"
    occamgan.train(overrides=TINY + ["eval.every=10"], out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "run"
    occamgan.train(overrides=IMAGE + ["train.report=false"], out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    run_sweep(None, ["model.depth=0,1"], seeds=1, out=out, jobs=1, overrides=TINY, plots=False)
    return out


def copy_run(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    (dst / "report.html").unlink(missing_ok=True)
    return dst


# --------------------------------------------------------------------------- reading the HTML
class Page(HTMLParser):
    """Sections (id -> text), image sources, links, <details> summaries and table cells."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.sections, self.imgs, self.hrefs, self.summaries, self.cells = {}, [], [], [], []
        self.scripts = self.links = 0
        self._section, self._in_summary, self._in_cell = None, False, False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = ""
        elif tag == "img":
            self.imgs.append(attrs.get("src", ""))
        elif tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        elif tag == "summary":
            self._in_summary = True
            self.summaries.append("")
        elif tag == "td":
            self._in_cell = True
            self.cells.append("")
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "summary":
            self._in_summary = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._section:
            self.sections[self._section] += data
        if self._in_summary:
            self.summaries[-1] += data
        if self._in_cell:
            self.cells[-1] += data


def check_self_contained(text):
    """Parse the page, decode every image as a PNG, and refuse any outside reference."""
    page = Page(text)
    assert "http://" not in text and "https://" not in text
    assert page.scripts == 0 and page.links == 0
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(data)).verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            assert img.size[0] > 0 and img.size[1] > 0
    for href in page.hrefs:
        assert href.startswith("#") or "://" not in href
    return page


# --------------------------------------------------------------------------- runs
def test_toy_run_report_has_every_section(toy_run):
    import matplotlib.pyplot as plt

    user_figure = plt.figure()  # a user's open figure survives the report (no backend switch)
    path = write_report(toy_run)
    assert plt.fignum_exists(user_figure.number)
    plt.close(user_figure)
    assert path == RunDir(toy_run).report_path and path.is_file()
    page = check_self_contained(path.read_text())
    assert {"overview", "config", "training", "metric-curves", "scores", "samples"} <= set(page.sections)
    assert "sharpness" not in page.sections and "evidence" not in page.sections  # not measured
    assert "ring8" in page.sections["config"] and "latent_dim" in page.sections["config"]
    summary = RunDir(toy_run).read_summary()
    for name, value in summary["metrics"].items():
        assert name in page.cells or isinstance(value, dict)  # protocol records sit in collapsible blocks
    # loss curve, lr curve, one curve per metric evaluated at both steps, the final samples plot
    evals = {k for r in RunDir(toy_run).read_metrics() for k, v in r.items()
             if k.startswith("eval/") and isinstance(v, (int, float))}
    assert len(page.imgs) == 2 + len(evals) + 1
    assert "finished" in page.sections["overview"]


def test_image_run_report_embeds_the_grids(image_run, tmp_path):
    grids = RunDir(image_run).grid_paths()
    assert len(grids) == 2
    out = write_report(image_run, out=tmp_path / "deep" / "img.html")
    assert out == tmp_path / "deep" / "img.html" and not RunDir(image_run).report_path.exists()
    page = check_self_contained(out.read_text())
    samples = page.sections["samples"]
    assert "step 5" in samples and "step 10" in samples and "final samples" in samples
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in page.imgs]
    for grid in grids:
        assert grid.read_bytes() in embedded
    assert RunDir(image_run).samples_plot_path.read_bytes() in embedded


def test_sharpness_evidence_and_protocols_have_their_sections(toy_run, tmp_path):
    run_path = copy_run(toy_run, tmp_path)
    run = RunDir(run_path)
    step = run.read_summary()["step"]
    run.record_results(step, {"top_eigenvalue": 3.25, "top_eigenvalues": [3.25, 1.5, 0.25],
                              "protocol_lenet": {"network": "<b>lenet</b>", "n_fake": 64}})
    run.record_results(step, {"log_evidence": -12.5, "laplace": {"log_det": 4.0}}, section="evidence")
    with open(run.config_path, "a") as fh:
        fh.write("# <script>alert('x')</script>\n")
    text = render_run_report(run_path)
    page = check_self_contained(text)
    assert "3.25" in page.sections["sharpness"] and len(page.imgs) >= 5  # + the spectrum
    assert "top_eigenvalue" not in page.sections["scores"]  # in its own section
    assert "protocol_lenet" in page.summaries
    assert "protocol_lenet" not in page.cells  # a nested record is no score
    assert "-12.5" in page.sections["evidence"] and "laplace" in page.summaries
    assert "<b>lenet" not in text and "&lt;b&gt;lenet" in text
    assert "<script" not in text and "&lt;script&gt;" in text


def test_incomplete_runs_still_get_a_report(toy_run, tmp_path):
    run_path = copy_run(toy_run, tmp_path)
    run = RunDir(run_path)
    with open(run.metrics_path, "a") as fh:  # non-finite values logged as strings, then a torn line
        fh.write(json.dumps({"step": 25, "loss_d": "nan", "loss_g": "inf", "lr_g": 0.0, "eval/mmd": "nan"}) + "\n")
        fh.write('{"step": 30, "loss_d": 1.')
    run.summary_path.unlink()
    run.samples_plot_path.unlink()
    page = check_self_contained(render_run_report(run_path))
    assert "no summary yet" in page.sections["overview"]
    assert "latest logged evaluations" in page.sections["scores"]
    assert "no samples written yet" in page.sections["samples"]
    assert len(page.imgs) >= 2  # the loss and lr curves from the readable records

    run.metrics_path.unlink()  # a run that has not logged yet (its checkpoint makes it a run)
    page = check_self_contained(render_run_report(run_path))
    assert "no training losses logged yet" in page.sections["training"]
    assert page.imgs == []


def test_neither_run_nor_sweep_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(RunDirError, match=str(tmp_path)):
        write_report(tmp_path)
    with pytest.raises(RunDirError, match="missing"):
        write_report(tmp_path / "missing")


def test_output_path_is_checked_before_any_work(toy_run, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(OccamError, match="not a directory"):
        write_report(toy_run, out=tmp_path / "file" / "r.html")
    with pytest.raises(OccamError, match="is a directory"):
        check_writable(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        try:
            with pytest.raises(OccamError, match="not writable"):
                check_writable(ro / "r.html")
        finally:
            ro.chmod(0o755)
    else:  # root writes into read-only directories: a read-only file system is what stops it

        def refuse(*args, **kwargs):
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(report_pkg.tempfile, "mkstemp", refuse)
        with pytest.raises(OccamError, match="Read-only file system") as info:
            write_report(toy_run, out=ro / "sub" / "r.html")
        assert str(ro / "sub" / "r.html") in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- sweeps
def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_report_has_table_plots_and_run_links(sweep_dir):
    out = write_report(sweep_dir)
    assert out == sweep_dir / "report.html"
    page = check_self_contained(out.read_text())
    assert {"plan", "table", "plots", "runs"} <= set(page.sections)
    rows = read_csv(sweep_dir / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
    metrics = [k for k in ("mmd", "w2") if k in rows[0]]
    assert metrics
    for row in rows:
        assert row["run"] in page.sections["runs"]
        for metric in metrics:
            assert f"{float(row[metric]):.4g}" in page.cells  # one seed per point: the mean alone
    # one plot per numeric metric per grid key (1 key)
    assert len(page.imgs) >= len(metrics)
    for href in (h for h in page.hrefs if not h.startswith("#")):
        assert (sweep_dir / unquote(href)).exists()


def test_sweep_report_elsewhere_links_back_to_the_runs(sweep_dir, tmp_path):
    name = read_csv(sweep_dir / "results.csv")[0]["run"]
    write_report(sweep_dir / "runs" / name)  # that run now has a report to link to
    out = write_report(sweep_dir, out=tmp_path / "elsewhere" / "sweep.html")
    page = check_self_contained(out.read_text())
    targets = [(out.parent / unquote(h)).resolve() for h in page.hrefs if not h.startswith("#")]
    assert RunDir(sweep_dir / "runs" / name).report_path.resolve() in targets
    assert all(t.exists() for t in targets)


def test_sweep_table_is_mean_and_std_of_results_csv(tmp_path):
    """A sweep written by hand: two grid keys, two seeds, a failed run, "nan" and text cells."""
    sweep = tmp_path / "hand"
    sweep.mkdir()
    plan = {"base": {"seed": 0}, "grid": [{"key": "model.depth", "values": [0, 1]},
                                          {"key": "objective.name", "values": ["ns", "<w>"]}],
            "seeds": [0, 1], "runs": []}
    (sweep / "sweep.json").write_text(json.dumps(plan))
    fields = ["run", "status", "model.depth", "objective.name", "seed", "mmd", "note", "seconds"]
    rows, mmd = [], {}
    for depth in (0, 1):
        for obj in ("ns", "<w>"):
            for seed in (0, 1):
                value = 0.1 * (depth + 1) + 0.01 * seed + (0.5 if obj == "ns" else 0.0)
                mmd.setdefault((depth, obj), []).append(value)
                rows.append([f"d{depth}_{obj}_s{seed}", "done", depth, obj, seed, value, "text", 1.0])
    rows.append(["d0_ns_s2", "diverged", 0, "ns", 2, "nan", "", ""])
    with open(sweep / "results.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        writer.writerows(rows)
    text = render_sweep_report(sweep)
    page = check_self_contained(text)
    for values in mmd.values():
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert f"{mean:.4g} ± {std:.2g}" in page.cells
    assert "2/3" in page.cells and "2/2" in page.cells  # finished / planned per point
    assert "note" not in Page(text).sections["table"]  # text columns are no metrics
    assert len(page.imgs) == 2  # mmd against each of the two keys
    assert "&lt;w&gt;" in text and "<w>" not in text


# --------------------------------------------------------------------------- the command
def invoke(*args):
    return CliRunner().invoke(app, ["report", *map(str, args)])


def test_cli_writes_the_report(toy_run, sweep_dir, tmp_path):
    out = tmp_path / "cli.html"
    result = invoke(toy_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and str(out) in result.stdout
    check_self_contained(out.read_text())
    result = invoke(sweep_dir)
    assert result.exit_code == 0, result.output
    assert "Mean ± std" in (sweep_dir / "report.html").read_text()


@pytest.mark.parametrize("case", ["not_a_run", "missing", "out_under_file"])
def test_cli_user_errors_are_one_line(case, toy_run, tmp_path):
    (tmp_path / "file").write_text("")
    args = {"not_a_run": [tmp_path], "missing": [tmp_path / "nope"],
            "out_under_file": [toy_run, "--out", tmp_path / "file" / "r.html"]}[case]
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert str(args[-1]) in lines[0] or str(tmp_path / "file") in lines[0]
