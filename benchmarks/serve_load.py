"""Load on `zoo serve`: N clients x M translate requests over loopback HTTP, at once.

    python benchmarks/serve_load.py [--clients 8] [--requests 20] [--size 256] [--mode eval]
                                    [--spec "unet_256(ngf=8)+l1" | --url http://127.0.0.1:PORT --name NAME]

Without --url it writes a translator of ``--spec`` (random weights, seeded) to a temporary folder and
starts `zoo serve` on it on 127.0.0.1, port 0, CPU. Each client is a thread with one keep-alive
connection sending its own noise PNG of ``--size`` x ``--size`` pixels, one request after another.
Prints the p50 and p99 latency, the throughput (requests per second over the whole run), the mean
batch the server ran (from /health) and the errors by cause; the goal is zero errors. Figures, not
pass/fail.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image


def write_translator(folder: Path, spec: str) -> Path:
    """A translator file of ``spec`` with seeded random weights."""
    import torch

    from pix2pix_zoo.spec import resolve
    from pix2pix_zoo.translator import Card, save_translator

    torch.manual_seed(0)
    models = resolve(spec).build(3, 3)
    card = Card(spec=str(models.spec), in_channels=3, out_channels=3, size_multiple=models.generator.size_multiple)
    return save_translator(folder, models.generator, card)


@contextmanager
def started_server(spec: str, queue: int):
    """`zoo serve` on a fresh translator of ``spec``; yields (its URL, the name it serves)."""
    with tempfile.TemporaryDirectory() as folder:
        weights = write_translator(Path(folder) / "bench", spec)
        zoo = str(Path(sys.executable).with_name("zoo"))
        process = subprocess.Popen([zoo, "serve", str(weights), "--port", "0", "--device", "cpu",
                                    "--queue", str(queue)], stderr=subprocess.PIPE, text=True)
        try:
            line = process.stderr.readline()
            if " on http://" not in line:
                raise SystemExit(f"zoo serve did not start: {line}{process.stderr.read()}")
            yield line.split(" on ")[1].strip(), "bench"
        finally:
            process.terminate()
            process.wait(timeout=60)


def health(url: str) -> dict:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request("GET", "/health")
    return json.loads(connection.getresponse().read())


def client(url: str, path: str, body: bytes, count: int, latencies: list[float], errors: Counter) -> None:
    """``count`` requests on one keep-alive connection (a new one after a failure)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=300)
    for _ in range(count):
        start = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors[f"HTTP {response.status}"] += 1
                continue
        except (OSError, http.client.HTTPException) as error:
            errors[type(error).__name__] += 1
            connection.close()
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=300)
            continue
        latencies.append(time.perf_counter() - start)
    connection.close()


def noise_png(size: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def measure(url: str, name: str, clients: int, requests: int, size: int, mode: str) -> None:
    path = f"/translators/{name}/translate?mode={mode}"
    client(url, path, noise_png(size, 0), 1, [], Counter())  # warm-up: first-call costs are not load
    batches_before = health(url)["batches"]
    latencies: list[float] = []
    errors: Counter = Counter()
    threads = [threading.Thread(target=client, args=(url, path, noise_png(size, seed), requests, latencies, errors))
               for seed in range(1, clients + 1)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    batches = health(url)["batches"] - batches_before
    total = clients * requests
    print(f"{clients} clients x {requests} requests, {size}x{size} PNG, {mode} mode: {total} requests in {elapsed:.1f} s")
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
        print(f"latency p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"throughput {len(latencies) / elapsed:.1f} req/s; mean batch {len(latencies) / max(1, batches):.1f} "
          f"images ({batches} batches)")
    print(f"errors {sum(errors.values())}" + (f": {dict(errors)}" if errors else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--size", type=int, default=256, help="side of the square test images")
    parser.add_argument("--mode", choices=("eval", "paper"), default="eval")
    parser.add_argument("--spec", default="unet_256(ngf=8)+l1", help="the translator started without --url")
    parser.add_argument("--url", help="an already running zoo serve (loopback)")
    parser.add_argument("--name", help="the translator to ask --url for")
    args = parser.parse_args()
    if args.url:
        if not args.name:
            parser.error("--url needs --name")
        measure(args.url, args.name, args.clients, args.requests, args.size, args.mode)
        return
    with started_server(args.spec, queue=max(32, args.clients)) as (url, name):
        print(f"zoo serve on {url}: {args.spec}, CPU")
        measure(url, name, args.clients, args.requests, args.size, args.mode)


if __name__ == "__main__":
    main()
