#!/usr/bin/python3
"""A kvcloak-style baseline (Luo et al., "Shadow in the Cache", NDSS 2026; code SiO-2/kvcloak):
recover a prompt from one block's leaked keys or values, position by position, candidates in the
order of the model's own next-token probabilities at the recovered prefix, checked --batch (256) at a
time on the reused prefix cache, the best of the first batch that holds one within --threshold
accepted. PyTorch eager (sipit.py's Llama), one thread: the baseline for `inputrep invert --hook
blocks.N.attn.hook_k --optimizer exact:prior`.

    /usr/bin/python3 benchmarks/python/kvcloak.py --layer 4 --kind k --prompts 20 --length 20 --write-prompts p.txt
    build-bench/benchmarks/bench_exact --case stories260K --hook blocks.4.attn.hook_k --prompt-file p.txt \\
        --methods exact-prior,exact-prior-together

Prompts: stories260K's own samples (BOS, then temperature 1), as bench_exact's --kind sampled;
--write-prompts saves them for bench_exact --prompt-file. Targets: one full causal forward per prompt.
Position 0 has no prefix: its candidates go in id order. Prints one JSON line.
"""
import argparse
import json
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from capture import capture  # noqa: E402
from sipit import Cache, load_stories, sample_stories  # noqa: E402


@torch.no_grad()
def recover(model, target, layer, kind, batch, threshold):
    """Ids, candidates checked and unmatched positions for one leaked (T, kv heads, hd) tensor."""
    T, V = target.shape[0], model.E.shape[0]
    cache, ids, checked, unmatched, h = Cache(model, T), [], 0, 0, None
    for t in range(T):
        order = torch.arange(V) if h is None else model.logits(h).argsort(descending=True)
        goal = target[t].flatten()
        best = (float("inf"), None, None, None)
        for start in range(0, V, batch):
            cand = order[start:start + batch]
            hidden, kv = model.step(model.E[cand], cache, t)
            got = kv[layer][0 if kind == "k" else 1].flatten(1)
            err = (got - goal).norm(dim=1) / goal.norm()
            checked += len(cand)
            i = int(err.argmin())
            if float(err[i]) < best[0]:
                best = (float(err[i]), int(cand[i]), (kv, i), hidden[i])
            if best[0] <= threshold:
                break
        unmatched += best[0] > threshold
        ids.append(best[1])
        cache.write(best[2][0], best[2][1], t)
        h = best[3]
    return ids, checked, unmatched


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=4, help="the leaked block (stories260K: 0-4)")
    parser.add_argument("--kind", choices=["k", "v"], default="k")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threshold", type=float, default=1e-4, help="relative error that accepts a candidate")
    parser.add_argument("--write-prompts", help="save the prompts, one line of ids each, for bench_exact")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_stories(5)
    if not 0 <= args.layer < model.blocks:
        sys.exit(f"--layer {args.layer}: stories260K has blocks 0-{model.blocks - 1}")
    gen = torch.Generator().manual_seed(args.seed)
    prompts = [sample_stories(model, args.length, gen) for _ in range(args.prompts)]
    if args.write_prompts:
        pathlib.Path(args.write_prompts).write_text("".join(" ".join(map(str, p)) + "\n" for p in prompts))
    targets = [capture(model, p)[f"blocks.{args.layer}.attn.hook_{args.kind}"] for p in prompts]
    started = time.perf_counter()
    exact = checked = unmatched = 0
    for p, target in zip(prompts, targets):
        ids, c, u = recover(model, target, args.layer, args.kind, args.batch, args.threshold)
        exact += ids == p
        checked += c
        unmatched += u
    seconds = time.perf_counter() - started
    print(json.dumps({"method": "kvcloak-style", "hook": f"blocks.{args.layer}.attn.hook_{args.kind}",
                      "prompts": len(prompts), "length": args.length, "exact": exact / len(prompts),
                      "unmatched_positions": unmatched,
                      "candidates_checked_percent_of_vocab": 100 * checked / (len(prompts) * args.length) / model.E.shape[0],
                      "prompts_per_second": len(prompts) / seconds, "seconds_per_prompt": seconds / len(prompts)}))


if __name__ == "__main__":
    main()
