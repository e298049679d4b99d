#!/usr/bin/python3
"""From PyTorch to inputrep: capture a Hugging Face Llama folder's hidden states and key/value cache
into the hook-keyed .safetensors file `inputrep invert --target` reads, the way `inputrep hidden
--save` writes it, with an implementation independent of inputrep (sipit.py's PyTorch Llama).

    /usr/bin/python3 benchmarks/python/capture.py --model ../shared/models/stories260K/hf \\
        --ids 1,403,407,261 --out capture.safetensors
    build/apps/inputrep/inputrep invert --model ../shared/models/stories260K/hf --optimizer exact \\
        --target capture.safetensors --hook blocks.2.attn.hook_k

Written, per block N (TransformerLens names; one prompt, so no batch axis):
    blocks.N.hook_resid_post   [tokens, d]            the block's output
    blocks.N.attn.hook_k       [tokens, kv heads, hd] keys after rotary, as a KV cache holds them
    blocks.N.attn.hook_v       [tokens, kv heads, hd]
as --dtype (f32, f16 or bf16: what a GPU capture would store).

With Hugging Face transformers the same tensors are, for a model run with
`output_hidden_states=True, use_cache=True`: hidden_states[N + 1] for block N < L - 1 (the last
entry is after the final norm, not blocks.{L-1}.hook_resid_post), and past_key_values[N][0] /
[N][1] [batch, kv heads, tokens, hd] transposed to [batch, tokens, kv heads, hd]; Llama's keys there
are after rotary too. (transformers is not in Debian 12, so this script does not use it.)
"""
import argparse
import json
import pathlib
import struct
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sipit import Llama, causal_attention, read_safetensors  # noqa: E402

DTYPES = {"f32": (torch.float32, "F32"), "f16": (torch.float16, "F16"), "bf16": (torch.bfloat16, "BF16")}


def capture(model, ids):
    """One prompt's residual stream after each block and each block's keys and values."""
    out = {}
    x = model.E[torch.tensor(ids)]
    pos = slice(0, len(ids))
    with torch.no_grad():
        for n in range(model.blocks):
            def attend(q, k, v, n=n):
                out[f"blocks.{n}.attn.hook_k"], out[f"blocks.{n}.attn.hook_v"] = k, v
                return causal_attention(q, k, v)
            x = model.block(n, x, pos, attend)
            out[f"blocks.{n}.hook_resid_post"] = x
    return out


def write_safetensors(path, tensors, dtype):
    """An 8-byte little-endian header length, the JSON header, then the raw little-endian data."""
    torch_dtype, name = DTYPES[dtype]
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        t = tensors[key].to(torch_dtype).contiguous()
        # bf16 has no numpy type: its bytes through int16, which has the same width.
        raw = (t.view(torch.int16) if torch_dtype == torch.bfloat16 else t).numpy().tobytes()
        header[key] = {"dtype": name, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a Hugging Face Llama folder (config.json, model.safetensors)")
    parser.add_argument("--ids", required=True, help="token ids I,J,...")
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    parser.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    args = parser.parse_args()
    if sys.byteorder != "little":
        sys.exit("safetensors is little-endian; this script writes the host's bytes")
    folder = pathlib.Path(args.model)
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") not in ("llama", "mistral"):
        sys.exit(f"{folder}: model_type {config.get('model_type')!r}; this script captures Llama-family folders")
    model = Llama(read_safetensors(folder / "model.safetensors"), config, config["num_hidden_layers"])
    ids = [int(i) for i in args.ids.split(",")]
    if not ids or max(ids) >= model.E.shape[0] or min(ids) < 0:
        sys.exit(f"--ids: every id must be in [0, {model.E.shape[0]})")
    write_safetensors(args.out, capture(model, ids), args.dtype)


if __name__ == "__main__":
    main()
