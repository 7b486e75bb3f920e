#!/usr/bin/env python3
"""PyTorch baselines for sinkless's benchmark, on the same shapes, timed the same way.

Writes one JSON object per line (the records `sinkless table` and `sinkless plot` read):
  - a "run" record: PyTorch, CUDA and cuDNN versions, the GPU's name, SM count and L2 size;
  - "throughput" records, the two ceilings: a device-to-device copy (bytes read plus written)
    and an 8192x8192x8192 bf16 matrix product on random data;
  - "attention" records: SDPA with each backend forced (flash, cuDNN, memory-efficient) for
    softmax, and an eager sigmoid attention, sigmoid(q k^T * scale - ln(seqlen_k)) v, as the
    sigmoid baseline; bf16, forward and backward, for every shape of the grid file.

Shapes come from `sinkless bench --print-grid` (one JSON object per line with batch, seqlen,
heads, head_dim, causal and the FLOPs of each pass), so both sides time the same problems and
agree on the FLOP count (checked here against FlashAttention's formula).

Timing: CUDA events around each run, a 256 MiB memset before each to flush the L2, warm-up
runs first, then batches of runs until enough samples and enough time; the median is reported.
A backend that refuses a shape is recorded as "unsupported", an error (out of memory) as
"failed"; neither stops the run. Tensors are [batch, seqlen, heads, head_dim] in memory, like
sinkless's, handed to SDPA as the usual [batch, heads, seqlen, head_dim] view.

usage:
  python3 torch_baselines.py --shapes shapes.jsonl --out torch.jsonl [--budget-s 330]
  python3 torch_baselines.py --shapes shapes.jsonl --dry-run   # no PyTorch needed: checks the
                                                               # grid file and the FLOP formula
"""

import argparse
import json
import math
import sys
import time

FLUSH_BYTES = 256 << 20


def flops(shape, pass_):
    """FlashAttention's count: 4*b*h*s*s*d forward, halved when causal; backward 2.5x."""
    f = 4.0 * shape["batch"] * shape["heads"] * shape["seqlen"] ** 2 * shape["head_dim"]
    if shape["causal"]:
        f /= 2.0
    return f if pass_ == "fwd" else 2.5 * f


def read_shapes(path):
    shapes = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            o = json.loads(line)
            if o.get("kind") != "shape":
                continue
            for pass_ in ("fwd", "bwd"):
                want = o.get("flops_" + pass_)
                got = flops(o, pass_)
                if want is not None and abs(want - got) > 1e-9 * got:
                    sys.exit(f"{path}:{n}: FLOPs of {pass_} disagree: sinkless {want}, here {got}")
            shapes.append(o)
    if not shapes:
        sys.exit(f"{path}: no shape records")
    return shapes


class Writer:
    """Writes records as they come, flushed, so a timeout keeps what was measured."""

    def __init__(self, path):
        self.f = open(path, "w") if path else None

    def __call__(self, record):
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = json.dumps(clean, allow_nan=False)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()
        if record.get("kind") == "attention":
            what = f"{record['impl']} {record['activation']} {record['pass']} b={record['batch']} s={record['seqlen']} h={record['heads']} d={record['head_dim']}{' causal' if record['causal'] else ''}"
        else:
            what = f"{record.get('kind')} {record.get('name', '')}"
        if record.get("status") == "ok" and "median_ms" in record:
            rate = record.get("tflops") or record.get("value")
            unit = "TFLOP/s" if "tflops" in record else record.get("unit", "")
            print(f"  {what}: {record['median_ms']:.3f} ms, {rate:.1f} {unit}", file=sys.stderr, flush=True)
        elif "status" in record:
            print(f"  {what}: {record['status']} {record.get('message', '')}", file=sys.stderr, flush=True)


def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return {"runs": n, "median_ms": median, "min_ms": s[0], "max_ms": s[-1]}


def short(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", required=True, help="output of `sinkless bench --print-grid`")
    ap.add_argument("--out", help="JSON-lines file to write")
    ap.add_argument("--dry-run", action="store_true", help="check the grid file only; no PyTorch")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-runs", type=int, default=20)
    ap.add_argument("--max-runs", type=int, default=200)
    ap.add_argument("--min-total-ms", type=float, default=200.0)
    ap.add_argument("--budget-s", type=float, default=330.0, help="stop timing (record 'unsupported') after this long")
    ap.add_argument("--no-ceilings", action="store_true")
    args = ap.parse_args()

    shapes = read_shapes(args.shapes)
    if args.dry_run:
        print(f"torch_baselines: {len(shapes)} shapes read, FLOPs agree with sinkless; dry run, nothing timed")
        return 0

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        sys.exit(f"torch_baselines: PyTorch is not importable ({e})")
    if not torch.cuda.is_available():
        sys.exit("torch_baselines: PyTorch sees no GPU")

    started = time.monotonic()
    write = Writer(args.out)
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    write({
        "kind": "run",
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()),
        "gpu": props.name,
        "sm_count": props.multi_processor_count,
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "memory_bytes": props.total_memory,
    })
    flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device=dev)

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        torch.cuda.synchronize()
        samples = []
        while len(samples) < args.min_runs or (len(samples) < args.max_runs and sum(samples) < args.min_total_ms):
            batch = max(1, min(args.min_runs, args.max_runs - len(samples)))
            events = []
            for _ in range(batch):
                flush.zero_()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events.append((start, end))
            torch.cuda.synchronize()
            samples += [s.elapsed_time(e) for s, e in events]
        return stats(samples)

    def over_budget():
        return time.monotonic() - started > args.budget_s

    # The two ceilings. Random data: zeros compress and multiply faster than real data.
    if not args.no_ceilings:
        nbytes = 2 << 30
        try:
            src = torch.randint(-128, 127, (nbytes,), dtype=torch.int8, device=dev)
            dst = torch.empty_like(src)
            st = timed(lambda: dst.copy_(src))
            del src, dst
            write({"kind": "throughput", "name": "copy", "impl": "torch", "detail": "2 GiB device to device",
                   **st, "value": 2 * nbytes / (st["median_ms"] * 1e-3) / 1e9, "unit": "GB/s", "status": "ok"})
        except Exception as e:  # noqa: BLE001 - any failure becomes a record
            write({"kind": "throughput", "name": "copy", "impl": "torch", "detail": "2 GiB device to device",
                   "unit": "GB/s", "status": "failed", "message": short(e)})
        n = 8192
        try:
            a = torch.randn(n, n, dtype=torch.bfloat16, device=dev)
            b = torch.randn(n, n, dtype=torch.bfloat16, device=dev)
            c = torch.empty(n, n, dtype=torch.bfloat16, device=dev)
            st = timed(lambda: torch.matmul(a, b, out=c))
            del a, b, c
            write({"kind": "throughput", "name": "matmul", "impl": "torch", "detail": f"{n}x{n}x{n} bf16",
                   **st, "value": 2 * n**3 / (st["median_ms"] * 1e-3) / 1e12, "unit": "TFLOP/s", "status": "ok"})
        except Exception as e:  # noqa: BLE001
            write({"kind": "throughput", "name": "matmul", "impl": "torch", "detail": f"{n}x{n}x{n} bf16",
                   "unit": "TFLOP/s", "status": "failed", "message": short(e)})
        torch.cuda.empty_cache()

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        SDPBackend = sdpa_kernel = None
    sdpa_backends = []
    for impl, name in (("torch-flash", "FLASH_ATTENTION"), ("torch-cudnn", "CUDNN_ATTENTION"),
                       ("torch-efficient", "EFFICIENT_ATTENTION")):
        backend = getattr(SDPBackend, name, None) if SDPBackend else None
        sdpa_backends.append((impl, backend, f"SDPBackend.{name} is missing in PyTorch {torch.__version__}"))

    def eager_sigmoid(q, k, v, causal, mask):
        # sigmoid(q k^T * scale - ln(seqlen_k)), no normalisation: what sinkless's sigmoid
        # computes, written the way a model without a fused kernel would.
        s = torch.matmul(q, k.transpose(-2, -1))
        s.mul_(1.0 / math.sqrt(q.shape[-1])).sub_(math.log(k.shape[-2]))
        p = torch.sigmoid(s)
        if causal:
            p = p.masked_fill(mask, 0.0)
        return torch.matmul(p, v)

    def record(impl, activation, pass_, shape, outcome):
        r = {"kind": "attention", "impl": impl, "activation": activation, "pass": pass_, "dtype": "bf16",
             "batch": shape["batch"], "seqlen": shape["seqlen"], "heads": shape["heads"],
             "head_dim": shape["head_dim"], "causal": shape["causal"], "flops": flops(shape, pass_)}
        r.update(outcome)
        if outcome.get("status") == "ok":
            r["tflops"] = r["flops"] / (r["median_ms"] * 1e-3) / 1e12
        write(r)

    for shape in shapes:
        b, s, h, d, causal = shape["batch"], shape["seqlen"], shape["heads"], shape["head_dim"], shape["causal"]

        def bshd():
            # [b, s, h, d] in memory, seen as [b, h, s, d].
            return torch.randn(b, s, h, d, dtype=torch.bfloat16, device=dev).transpose(1, 2)

        q, k, v, do = bshd(), bshd(), bshd(), bshd()
        mask = torch.ones(s, s, dtype=torch.bool, device=dev).triu(1) if causal else None
        candidates = [(impl, "softmax", backend, missing) for impl, backend, missing in sdpa_backends]
        candidates.append(("torch-eager", "sigmoid", None, None))
        for impl, activation, backend, missing in candidates:
            for pass_ in ("fwd", "bwd"):
                if over_budget():
                    record(impl, activation, pass_, shape, {"status": "unsupported", "message": f"time budget of {args.budget_s:.0f} s spent"})
                    continue
                if impl.startswith("torch-") and impl != "torch-eager" and backend is None:
                    record(impl, activation, pass_, shape, {"status": "unsupported", "message": missing})
                    continue
                qq, kk, vv = (t.detach().requires_grad_(pass_ == "bwd") for t in (q, k, v))

                def forward():
                    if impl == "torch-eager":
                        return eager_sigmoid(qq, kk, vv, causal, mask)
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)

                try:
                    if pass_ == "fwd":
                        with torch.no_grad():
                            st = timed(forward)
                    else:
                        out = forward()
                        st = timed(lambda: torch.autograd.grad(out, (qq, kk, vv), do, retain_graph=True))
                        del out
                    record(impl, activation, pass_, shape, {**st, "status": "ok"})
                except Exception as e:  # noqa: BLE001 - out of memory, a refused backend: a record
                    msg = short(e)
                    refused = "No available kernel" in msg or "not supported" in msg.lower() or "no kernel" in msg.lower()
                    record(impl, activation, pass_, shape, {"status": "unsupported" if refused else "failed", "message": msg})
                torch.cuda.empty_cache()
        del q, k, v, do, mask
        torch.cuda.empty_cache()
    print(f"torch_baselines: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
