"""``zoo serve``: a real server on 127.0.0.1 spoken to over real HTTP, its limits, its batching, its page.

Most tests run the console script as a subprocess (port 0, the port read from its ``serving ... on``
line). The batching and the full queue need the worker held busy at a known moment, so those run
:func:`pix2pix_zoo.serving.make_app` under uvicorn in a thread, with a generator that waits for the
test's signal: still a real socket on 127.0.0.1 and real HTTP.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from helpers import chromium, run_env, zoo_executable
from PIL import Image
from torch import nn

from pix2pix_zoo.devices import emulated_precision_note
from pix2pix_zoo.engine import rundir
from pix2pix_zoo.serving import Limits, make_app, translator_names
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, Translator, save_translator

TINY_SPEC = "unet_128(ngf=4)+l1"  # batch norm and dropout: eval and paper modes differ
MAX_UPLOAD_BYTES = 64 * 1024  # --max-upload-mb 0.0625
MAX_PIXELS = 40_000


def tiny_translator_file(folder: Path) -> Path:
    torch.manual_seed(0)
    models = resolve(TINY_SPEC).build(3, 3)
    card = Card(spec=str(models.spec), in_channels=3, out_channels=3, size_multiple=models.generator.size_multiple,
                task="noise to noise")
    return save_translator(folder, models.generator, card)


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def fetch(base: str, path: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict, bytes]:
    """One real HTTP request: (status, headers in lower case, body)."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    try:
        connection.request(method or ("GET" if body is None else "POST"), path, body=body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def as_json(answer: tuple[int, dict, bytes]) -> tuple[int, dict]:
    status, headers, body = answer
    assert headers["content-type"] == "application/json", headers
    return status, json.loads(body)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_translator_file(tmp_path_factory.mktemp("translators") / "tiny")


def everything_in(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*"))


def where_it_listens(process: subprocess.Popen) -> str:
    """The address in the server's next line on stderr, which must say where it listens; otherwise the
    test fails with everything it said (once stopped, so that reading its stderr cannot hang)."""
    line = process.stderr.readline()
    if not line.startswith("serving tiny on http://127.0.0.1:"):
        process.terminate()
        pytest.fail(line + process.stderr.read())
    return line.split(" on ")[1].strip()


@pytest.fixture(scope="module")
def server(weights, tmp_path_factory):
    """``zoo serve`` in a real process, its TMPDIR and working folder empty folders of their own."""
    scratch, cwd = tmp_path_factory.mktemp("tmpdir"), tmp_path_factory.mktemp("cwd")
    process = subprocess.Popen(
        [zoo_executable(), "serve", str(weights), "--port", "0", "--device", "cpu",
         "--max-upload-mb", str(MAX_UPLOAD_BYTES / 1024 / 1024), "--max-pixels", str(MAX_PIXELS)],
        stderr=subprocess.PIPE, text=True, cwd=cwd, env=run_env(TMPDIR=str(scratch)),
    )
    try:
        yield {"url": where_it_listens(process), "tmpdir": scratch, "cwd": cwd, "process": process,
               "started_with": everything_in(scratch, cwd)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_lists_the_translators_with_their_cards_and_answers_health(server):
    status, listed = as_json(fetch(server["url"], "/translators"))
    assert status == 200 and [entry["name"] for entry in listed] == ["tiny"]
    assert listed[0]["card"]["spec"] == TINY_SPEC and listed[0]["card"]["task"] == "noise to noise"
    assert listed[0]["mode"] == "paper" and listed[0]["modes"] == ["eval", "paper"]  # the card's default, and both
    status, health = as_json(fetch(server["url"], "/health"))
    assert status == 200 and health["status"] == "ok" and health["translators"] == ["tiny"]
    assert health["queue"] == 0 and health["queue_limit"] == 32


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_translates_an_upload_at_its_size_as_the_translator_does(server, weights, image_format):
    upload = encoded(noise_image(45, 29), image_format)  # not square, not a multiple of 128
    status, headers, body = fetch(server["url"], "/translators/tiny/translate?mode=eval", upload)
    assert status == 200 and headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(upload)) as sent:
        expected = Translator.from_pretrained(weights, device="cpu", mode="eval")(sent.convert("RGB"))
    assert pixels(body).shape == (29, 45, 3)
    np.testing.assert_array_equal(pixels(body), np.asarray(expected))


def test_paper_mode_takes_its_seed(server, weights):
    upload = encoded(noise_image(40, 30, seed=1))
    first = fetch(server["url"], "/translators/tiny/translate?mode=paper&seed=3", upload)
    again = fetch(server["url"], "/translators/tiny/translate?mode=paper&seed=3", upload)
    eval_mode = fetch(server["url"], "/translators/tiny/translate?mode=eval", upload)
    assert first[0] == again[0] == eval_mode[0] == 200
    expected = Translator.from_pretrained(weights, device="cpu", mode="paper", seed=3)(noise_image(40, 30, seed=1))
    np.testing.assert_array_equal(pixels(first[2]), np.asarray(expected))
    assert first[2] == again[2] and first[2] != eval_mode[2]


def test_refuses_what_is_too_large(server):
    status, answer = as_json(fetch(server["url"], "/translators/tiny/translate", b"\0" * (MAX_UPLOAD_BYTES + 1)))
    assert status == 413 and str(MAX_UPLOAD_BYTES) in answer["error"]
    status, answer = as_json(fetch(server["url"], "/translators/tiny/translate", encoded(Image.new("RGB", (250, 200)))))
    assert status == 413 and "250x200" in answer["error"] and str(MAX_PIXELS) in answer["error"]


def test_refuses_what_is_not_an_image_in_json(server):
    complete = encoded(noise_image(45, 29))
    uploads = {"text": b"hello, this is not a picture\n", "truncated png": complete[: len(complete) // 2],
               "empty": b"", "png signature only": complete[:8]}
    for what, upload in uploads.items():
        status, answer = as_json(fetch(server["url"], "/translators/tiny/translate", upload))
        assert status == 400 and answer["error"], what
    status, answer = as_json(fetch(server["url"], "/translators/tiny/translate?mode=fast", complete))
    assert status == 400 and "eval, paper" in answer["error"]
    status, answer = as_json(fetch(server["url"], "/translators/tiny/translate?seed=x", complete))
    assert status == 400 and "seed" in answer["error"]


def test_an_unknown_translator_is_404_naming_the_choices(server):
    status, answer = as_json(fetch(server["url"], "/translators/nope/translate", encoded(noise_image(8, 8))))
    assert status == 404 and "'nope'" in answer["error"] and "tiny" in answer["error"]
    status, headers, body = fetch(server["url"], "/translators/tiny/translate")  # GET: the route takes POST only
    status, answer = as_json((status, headers, body))
    assert status == 405 and headers["allow"] == "POST"
    assert answer["error"].startswith("'/translators/tiny/translate' takes POST, not GET; the API: GET / (the page)")


def test_an_unknown_path_is_a_json_404_naming_the_api(server):
    for method, body in (("GET", None), ("POST", b"x"), ("DELETE", None)):
        status, answer = as_json(fetch(server["url"], "/translate", body, method))
        assert status == 404, method
        assert answer["error"] == (f"no {method} '/translate'; the API: GET / (the page), GET /health, "
                                   "GET /translators, POST /translators/NAME/translate")


def test_nothing_uploaded_is_written_to_disk(server):
    for image_format in ("PNG", "JPEG", "BMP"):
        status, _, _ = fetch(server["url"], "/translators/tiny/translate", encoded(noise_image(60, 50), image_format))
        assert status == 200
    fetch(server["url"], "/translators/tiny/translate", b"\0" * (MAX_UPLOAD_BYTES * 2))
    assert server["process"].poll() is None
    # torch makes an empty cache folder in TMPDIR as it starts (torchinductor_USER); no file appears, ever.
    assert everything_in(server["tmpdir"], server["cwd"]) == server["started_with"]
    assert not [path for path in server["started_with"] if not path.is_dir()]


def test_the_page_is_served_self_contained(server):
    status, headers, body = fetch(server["url"], "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'type="file"' in page and "translate?" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page  # nothing from elsewhere


# -- batching and the bounded queue, with the worker held busy -------------------------------------------------
class HeldGenerator(nn.Module):
    """A generator that notes each batch's size and waits for ``release`` before running it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.release = threading.Event()
        self.batch_sizes: list[int] = []

    def forward(self, images):
        self.batch_sizes.append(images.shape[0])
        assert self.release.wait(60), "the test never released the worker"
        return self.inner(images)


@contextmanager
def served_in_a_thread(translators: dict[str, Translator], limits: Limits):
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(make_app(translators, limits), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


@pytest.fixture
def held(weights):
    translator = Translator.from_pretrained(weights, device="cpu")
    generator = HeldGenerator(translator.generator)
    yield Translator(generator, translator.card, device="cpu")
    generator.release.set()


def in_background(base: str, path: str, body: bytes) -> tuple[threading.Thread, list]:
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(fetch(base, path, body)))
    thread.start()
    return thread, answer


def wait_for(base: str, **expected: int) -> None:
    """Until /health shows ``expected`` (e.g. running=1, queue=3)."""
    for _ in range(3000):
        health = json.loads(fetch(base, "/health")[2])
        if all(health[key] == value for key, value in expected.items()):
            return
        time.sleep(0.01)
    raise AssertionError(f"the server never reached {expected}: {health}")


def test_waiting_eval_requests_of_one_size_run_as_one_batch_each_with_its_own_output(held, weights):
    alone = Translator.from_pretrained(weights, device="cpu", mode="eval")
    images = {name: noise_image(*size, seed=index) for index, (name, size) in enumerate(
        {"first": (40, 24), "b": (45, 29), "c": (45, 29), "d": (45, 29), "other size": (30, 30),
         "paper 1": (45, 29), "paper 2": (45, 29)}.items())}
    with served_in_a_thread({"held": held}, Limits(queue=8, max_batch=8)) as base:
        calls = {"first": in_background(base, "/translators/held/translate?mode=eval", encoded(images["first"]))}
        wait_for(base, running=1)
        for name in ("b", "c", "d", "other size", "paper 1", "paper 2"):
            mode = "paper&seed=5" if name.startswith("paper") else "eval"
            calls[name] = in_background(base, f"/translators/held/translate?mode={mode}", encoded(images[name]))
            wait_for(base, queue=len(calls) - 1)  # queued in this order
        held.generator.release.set()
        for thread, _ in calls.values():
            thread.join(120)
    answers = {name: answer[0] for name, (_, answer) in calls.items()}
    assert held.generator.batch_sizes == [1, 3, 1, 1, 1]  # b, c and d together; paper mode one by one
    assert {name: int(headers["x-batch-size"]) for name, (_, headers, _) in answers.items()} == {
        "first": 1, "b": 3, "c": 3, "d": 3, "other size": 1, "paper 1": 1, "paper 2": 1}
    for name in ("first", "b", "c", "d", "other size"):
        np.testing.assert_array_equal(pixels(answers[name][2]), np.asarray(alone(images[name])), err_msg=name)
    paper = Translator.from_pretrained(weights, device="cpu", mode="paper", seed=5)
    np.testing.assert_array_equal(pixels(answers["paper 2"][2]), np.asarray(paper(images["paper 2"])))


def test_a_full_queue_answers_503_with_retry_after(held):
    upload = encoded(noise_image(32, 32))
    with served_in_a_thread({"held": held}, Limits(queue=1)) as base:
        running, running_answer = in_background(base, "/translators/held/translate", upload)
        wait_for(base, running=1)
        waiting, waiting_answer = in_background(base, "/translators/held/translate", upload)
        wait_for(base, queue=1)
        status, headers, body = fetch(base, "/translators/held/translate", upload)
        assert status == 503 and int(headers["retry-after"]) >= 1, body
        assert "busy" in json.loads(body)["error"]
        held.generator.release.set()
        running.join(60)
        waiting.join(60)
    assert running_answer[0][0] == waiting_answer[0][0] == 200


def test_an_onnx_export_is_served_in_its_own_mode_and_refuses_the_other(weights, tmp_path):
    from pix2pix_zoo.export import export_generator
    from pix2pix_zoo.translator import load_generator, read_card

    card = read_card(weights)
    onnx_file = export_generator(load_generator(weights, card), card, tmp_path / "model.onnx", "onnx")
    exported = Translator.from_pretrained(onnx_file, device="cpu")
    image = noise_image(45, 29)
    with served_in_a_thread({"tiny": exported}, Limits()) as base:
        status, _, body = fetch(base, "/translators/tiny/translate", encoded(image))
        assert status == 200
        expected = Translator.from_pretrained(weights, device="cpu", mode="eval")(image)
        assert np.abs(pixels(body).astype(int) - np.asarray(expected).astype(int)).max() <= 1
        status, error = as_json(fetch(base, "/translators/tiny/translate?mode=paper", encoded(image)))
        assert status == 400 and error["error"] == "this translator runs eval mode only, not paper"


def test_the_onnxruntime_backend_serves_a_weights_file_in_the_one_mode_exported(weights, tmp_path):
    process = subprocess.Popen(  # the card's mode, paper: exported in memory with batch statistics and dropout
        [zoo_executable(), "serve", str(weights), "--port", "0", "--device", "cpu", "--backend", "onnxruntime"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=run_env())
    try:
        base = where_it_listens(process)
        status, listed = as_json(fetch(base, "/translators"))
        assert status == 200 and listed[0]["mode"] == "paper" and listed[0]["modes"] == ["paper"]
        image = noise_image(45, 29)
        status, _, body = fetch(base, "/translators/tiny/translate", encoded(image))
        assert status == 200 and Image.open(io.BytesIO(body)).size == (45, 29)
        status, error = as_json(fetch(base, "/translators/tiny/translate?mode=eval", encoded(image)))
        assert status == 400 and error["error"] == "this translator runs paper mode only, not eval"
        status, error = as_json(fetch(base, "/translators/tiny/translate?seed=5", encoded(image)))
        assert status == 400 and error["error"] == (
            "this onnxruntime session draws paper mode's dropout from a random seed, set when it was loaded: "
            "load it again to change the seed")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_16_bit_precision_serves_every_request_in_it(weights, tmp_path):
    process = subprocess.Popen(
        [zoo_executable(), "serve", str(weights), "--port", "0", "--device", "cpu", "--precision", "bf16"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=run_env())
    try:
        if emulated_precision_note(torch.device("cpu"), "bf16"):  # said before it listens
            assert process.stderr.readline().startswith("note: this CPU has no native bf16 products")
        base = where_it_listens(process)
        image = noise_image(45, 29)
        for mode in ("eval", "paper"):  # paper mode with a seed runs on a translator made for the request
            status, _, body = fetch(base, f"/translators/tiny/translate?mode={mode}&seed=2", encoded(image))
            expected = [Translator.from_pretrained(weights, device="cpu", mode=mode, seed=2, precision=precision)(image)
                        for precision in ("bf16", "fp32")]
            assert status == 200 and np.array_equal(pixels(body), np.asarray(expected[0])), mode
            assert not np.array_equal(np.asarray(expected[0]), np.asarray(expected[1]))  # bf16 is not fp32
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_translators_are_named_after_their_paths_and_names_must_differ(tmp_path):
    assert translator_names(["facades_label2photo", "runs/tiny/", "x/maps/model.safetensors", "a/b.onnx"]) == [
        "facades_label2photo", "tiny", "maps", "b"]
    # A run's translator folder, the path `zoo train` prints, is served under the run's name; a folder
    # called translator elsewhere keeps its own.
    (tmp_path / "runs" / "colour" / "translator").mkdir(parents=True)
    (tmp_path / "runs" / "colour" / rundir.MARKER).touch()
    assert translator_names([str(tmp_path / "runs" / "colour" / "translator")]) == ["colour"]
    assert translator_names([str(tmp_path / "runs" / "colour" / "translator" / "model.safetensors")]) == ["colour"]
    assert translator_names([str(tmp_path / "elsewhere" / "translator")]) == ["translator"]
    with pytest.raises(Exception, match="two translators would be served as 'tiny'"):
        translator_names(["runs/tiny", "other/tiny"])


def test_another_address_than_loopback_is_warned_about(weights, tmp_path):
    process = subprocess.Popen([zoo_executable(), "serve", str(weights), "--host", "0.0.0.0", "--port", "0"],
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=run_env())
    try:
        warning, listening = process.stderr.readline(), process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert warning.startswith("warning: listening on 0.0.0.0") and listening.startswith("serving tiny on http://0.0.0.0:")


# -- the page, in a real browser --------------------------------------------------------------------------------
@contextmanager
def devtools_page(url: str, profile: Path):
    """Headless Chromium showing ``url``; yields a function that sends a DevTools command to the page."""
    import websocket

    browser = subprocess.Popen(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
         "--remote-allow-origins=*", f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(fetch(f"http://127.0.0.1:{port}", "/json/list")[2])
        page = next(target for target in targets if target["type"] == "page")
        connection = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        counter = iter(range(1, 1_000_000))

        def send(method: str, **params):
            number = next(counter)
            connection.send(json.dumps({"id": number, "method": method, "params": params}))
            while True:
                message = json.loads(connection.recv())
                if message.get("id") == number:
                    assert "error" not in message, message
                    return message["result"]

        try:
            yield send
        finally:
            connection.close()
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def evaluate_until(send, expression: str, seconds: float = 60):
    """The value of ``expression`` in the page once it is truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never gave {expression}")


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_uploads_an_image_and_shows_the_translation_at_its_size(server, tmp_path):
    picture = tmp_path / "photo.jpg"
    noise_image(77, 51).save(picture)
    with devtools_page(server["url"] + "/", tmp_path / "profile") as send:
        evaluate_until(send, "document.querySelector('#translator').options.length > 0")
        root = send("DOM.getDocument")["root"]["nodeId"]
        file_input = send("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        send("DOM.setFileInputFiles", nodeId=file_input, files=[str(picture)])
        shown = evaluate_until(send, "(() => { const o = document.querySelector('#output'); const i = "
                                     "document.querySelector('#input'); return o.complete && o.naturalWidth > 0 && "
                                     "[o.naturalWidth, o.naturalHeight, i.naturalWidth, i.naturalHeight, "
                                     "document.querySelector('#download').download]; })()")
    assert shown == [77, 51, 77, 51, "photo-tiny.png"]


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_offers_only_the_modes_the_chosen_translator_runs(weights, tmp_path):
    from pix2pix_zoo.export import export_generator
    from pix2pix_zoo.translator import load_generator, read_card

    card = read_card(weights)
    onnx_file = export_generator(load_generator(weights, card), card, tmp_path / "model.onnx", "onnx")
    translators = {"both": Translator.from_pretrained(weights, device="cpu"),
                   "exported": Translator.from_pretrained(onnx_file, device="cpu")}
    disabled = "[...document.querySelector('#mode').options].filter(o => o.disabled).map(o => o.value).join(',')"
    with served_in_a_thread(translators, Limits()) as base, devtools_page(base + "/", tmp_path / "profile") as send:
        evaluate_until(send, "document.querySelector('#translator').options.length == 2")
        page = lambda expression: send("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]
        assert page("document.querySelector('#translator').value") == "both" and page(disabled) == ""
        chosen = page("(() => { document.querySelector('#mode').value = 'paper'; const t = document.querySelector('#translator');"
                      " t.value = 'exported'; t.dispatchEvent(new Event('change')); return document.querySelector('#mode').value; })()")
        assert page(disabled) == "paper" and chosen == ""  # paper mode un-chosen with the export that cannot run it


def test_the_load_benchmark_runs_and_reports_no_errors():
    """benchmarks/serve_load.py, as small as it goes: it starts its own server and prints its figures."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"
    result = subprocess.run([sys.executable, str(script), "--clients", "2", "--requests", "2", "--size", "40",
                             "--spec", "unet_128(ngf=2)+l1"], capture_output=True, text=True, env=run_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 clients x 2 requests, 40x40 PNG, eval mode: 4 requests" in result.stdout
    assert "latency p50" in result.stdout and "throughput" in result.stdout and "errors 0" in result.stdout
