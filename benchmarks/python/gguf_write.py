#!/usr/bin/python3
"""Write a GGUF file (llama.cpp's format, ggml's docs/gguf.md) from a llama2.c checkpoint or a Hugging
Face Llama or GPT-2 folder, independently of inputrep: the container by hand with struct, the blocks
quantised with torch (Debian's python3-torch; no numpy, nothing from PyPI).

    /usr/bin/python3 benchmarks/python/gguf_write.py --model ../shared/models/stories260K/stories260K.bin \\
        --type q8_0 --out stories260K-q8_0.gguf --dequantised-out stories260K-q8_0-hf
    build/apps/inputrep/inputrep hidden --model stories260K-q8_0.gguf --ids 1,403,407 --json

As llama.cpp's convert_hf_to_gguf.py writes them: llama.cpp's tensor names; Llama's q and k rows in
Meta's interleaved rotary order (a llama2.c file holds them so already; a Hugging Face folder's
rotate-half rows are permuted); GPT-2's Conv1D weights transposed to [out, in]; one-dimensional
tensors (norms, biases) kept F32; the output matrix left out when it is the embedding. Matrices whose
rows do not split into the type's blocks fall back to Q8_0 (K-quants) or F16, each named on stderr
(llama.cpp falls back to other types, which inputrep does not read).

--dequantised-out DIR writes a Hugging Face folder (config.json, model.safetensors) holding exactly
the f32 weights the GGUF file dequantises to, under Hugging Face's names and layouts, so that a
model read from the GGUF can be compared with the same weights read the ordinary way.

--tokenizer tokenizer.model adds the SentencePiece vocabulary as tokenizer.ggml.* "llama" metadata
(pieces, scores and types read from its protobuf); --bpe DIR adds a byte-level BPE (encoder.json +
vocab.bpe, or vocab.json + merges.txt) as "gpt2" metadata.
"""
import argparse
import json
import pathlib
import struct
import sys

import torch

ALIGNMENT = 32

# ggml's type ids and the elements of one block.
TYPES = {"f32": (0, 1), "f16": (1, 1), "bf16": (30, 1), "q8_0": (8, 32), "q4_0": (2, 32), "q4_K": (12, 256),
         "q6_K": (14, 256)}


def to_bytes(t):
    """A tensor's little-endian bytes, through a bytearray torch writes into."""
    t = t.contiguous().view(-1)
    buf = bytearray(t.numel() * t.element_size())
    torch.frombuffer(buf, dtype=torch.uint8).copy_(t.view(torch.uint8))
    return bytes(buf)


def f32(x):
    """x as the f32 the file stores."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


# Each quantiser takes [rows, cols] f32 and returns (the blocks' bytes, the f32 values they decode
# to), the decoding written as ggml's dequantize_row_* computes it in f32.

def quantise_f32(w):
    return to_bytes(w), w


def quantise_f16(w):
    h = w.half()
    return to_bytes(h), h.float()


def quantise_bf16(w):
    b = w.bfloat16()
    return to_bytes(b), b.float()


def safe_inverse(d):
    return torch.where(d > 0, 1 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))


def quantise_q8_0(w):
    """Blocks of 32: f16 d = max|x| / 127, then 32 int8 q; x = q·d."""
    x = w.reshape(-1, 32)
    d = (x.abs().amax(1) / 127).half()
    df = d.float()
    q = (x * safe_inverse(df)[:, None]).round().clamp(-127, 127).to(torch.int8)
    blocks = torch.cat([d.view(torch.uint8).reshape(-1, 2), q.view(torch.uint8)], 1)
    return to_bytes(blocks), (q.float() * df[:, None]).reshape(w.shape)


def quantise_q4_0(w):
    """Blocks of 32: f16 d = (the value of largest magnitude) / −8, then 16 bytes whose low nibbles
    are elements 0-15 and high nibbles 16-31; x = (q − 8)·d."""
    x = w.reshape(-1, 32)
    extreme = x.gather(1, x.abs().argmax(1, keepdim=True)).squeeze(1)
    d = (extreme / -8).half()
    df = d.float()
    inverse = torch.where(df != 0, 1 / torch.where(df != 0, df, torch.ones_like(df)), torch.zeros_like(df))
    q = (x * inverse[:, None] + 8).round().clamp(0, 15).to(torch.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    blocks = torch.cat([d.view(torch.uint8).reshape(-1, 2), packed], 1)
    return to_bytes(blocks), ((q.float() - 8) * df[:, None]).reshape(w.shape)


def quantise_q4_K(w):
    """Super-blocks of 256 in 8 sub-blocks of 32, each with a 6-bit scale and min: x = d·sc·q − dmin·m,
    q in 0..15. Here scale = range / 15 and min = −min(x, 0) per sub-block, quantised against d and
    dmin (f16) = their largest / 63."""
    x = w.reshape(-1, 8, 32)
    low = x.amin(2).clamp(max=0)
    scale, minimum = (x.amax(2) - low) / 15, -low
    d, dmin = (scale.amax(1) / 63).half(), (minimum.amax(1) / 63).half()
    df, dminf = d.float(), dmin.float()
    sc = (scale * safe_inverse(df)[:, None]).round().clamp(0, 63).to(torch.uint8)
    m = (minimum * safe_inverse(dminf)[:, None]).round().clamp(0, 63).to(torch.uint8)
    step, offset = df[:, None] * sc.float(), dminf[:, None] * m.float()
    q = ((x + offset[..., None]) * safe_inverse(step)[..., None]).round().clamp(0, 15).to(torch.uint8)
    # ggml's get_scale_min_k4 read backwards: sub-blocks 0-3 in the low six bits of bytes 0-3
    # (scales) and 4-7 (mins), sub-blocks 4-7 in the nibbles of bytes 8-11 and the top two bits of 0-7.
    scales = torch.cat([sc[:, :4] | ((sc[:, 4:] >> 4) << 6), m[:, :4] | ((m[:, 4:] >> 4) << 6),
                        (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4)], 1)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(-1, 128)
    blocks = torch.cat([d.view(torch.uint8).reshape(-1, 2), dmin.view(torch.uint8).reshape(-1, 2), scales, qs], 1)
    decoded = step[..., None] * q.float() - offset[..., None]
    return to_bytes(blocks), decoded.reshape(w.shape)


def quantise_q6_K(w):
    """Super-blocks of 256 in 16 sub-blocks of 16, each with an int8 scale: x = d·sc·(q − 32), q in
    0..63, stored as ql[128] (low four bits), qh[64] (high two), scales[16], f16 d. Here a sub-block's
    scale is max|x| / 31, quantised against d = the largest / 127."""
    x = w.reshape(-1, 16, 16)
    scale = x.abs().amax(2) / 31
    d = (scale.amax(1) / 127).half()
    df = d.float()
    sc = (scale * safe_inverse(df)[:, None]).round().clamp(-128, 127).to(torch.int8)
    step = df[:, None] * sc.float()
    q = (x * safe_inverse(step)[..., None]).round().clamp(-32, 31)
    stored = (q + 32).to(torch.uint8).reshape(-1, 2, 4, 32)  # [super-block, half, group of 32, l]
    g = [stored[:, :, i] for i in range(4)]
    ql = torch.cat([(g[0] & 15) | ((g[2] & 15) << 4), (g[1] & 15) | ((g[3] & 15) << 4)], 2).reshape(-1, 128)
    qh = ((g[0] >> 4) | ((g[1] >> 4) << 2) | ((g[2] >> 4) << 4) | ((g[3] >> 4) << 6)).reshape(-1, 64)
    blocks = torch.cat([ql, qh, sc.view(torch.uint8), d.view(torch.uint8).reshape(-1, 2)], 1)
    return to_bytes(blocks), (step[..., None] * q).reshape(w.shape)


QUANTISERS = {"f32": quantise_f32, "f16": quantise_f16, "bf16": quantise_bf16, "q8_0": quantise_q8_0,
              "q4_0": quantise_q4_0, "q4_K": quantise_q4_K, "q6_K": quantise_q6_K}


def storage_type(name, w, wanted):
    """The type a tensor is written in: norms and biases F32; a matrix the type asked for when its
    rows split into its blocks, else Q8_0 (for a K-quant) or F16."""
    if w.dim() == 1:
        return "f32"
    cols = w.shape[-1]
    candidates = [wanted] + (["q8_0"] if wanted in ("q4_K", "q6_K") else []) + ["f16"]
    chosen = next(c for c in candidates if cols % TYPES[c][1] == 0)
    if chosen != wanted:
        print(f"gguf_write: {name} has rows of {cols}, not a multiple of {wanted}'s {TYPES[wanted][1]}: "
              f"written as {chosen}", file=sys.stderr)
    return chosen


# Rotary row orders. llama.cpp's convert_hf_to_gguf.py permute(): Hugging Face's rotate-half rows
# (pair i, i + hd/2) to Meta's interleaved ones (pair 2i, 2i + 1), per head; and back.

def rotate_half_to_interleaved(w, heads):
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def interleaved_to_rotate_half(w, heads):
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# Readers return the architecture, the Hugging Face config and the tensors under llama.cpp's names,
# in the layout the GGUF holds.

def read_llama2c(path):
    """run.c's legacy v0 header (7 int32, vocab < 0: unshared classifier) or export.py's v1 ("ak42")."""
    data = bytearray(pathlib.Path(path).read_bytes())
    if struct.unpack_from("<I", data, 0)[0] == 0x616B3432:  # "ak42"
        version = struct.unpack_from("<i", data, 4)[0]
        if version != 1:
            sys.exit(f"{path}: llama2.c export version {version}; only the f32 ones (v0, v1) are read")
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 8)
        shared, at = data[36] != 0, 256
    else:
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 0)
        shared, vocab, at, version = vocab > 0, abs(vocab), 28, 0
    hd = dim // heads

    def take(*shape):
        nonlocal at
        n = 1
        for s in shape:
            n *= s
        t = torch.frombuffer(data, dtype=torch.float32, count=n, offset=at).reshape(shape).clone()
        at += 4 * n
        return t

    def per_layer(*shape):
        return [take(*shape) for _ in range(layers)]

    t = {}
    if version == 0:
        embed = take(vocab, dim)
        attn_norm, wq, wk = per_layer(dim), per_layer(heads * hd, dim), per_layer(kv_heads * hd, dim)
        wv, wo, ffn_norm = per_layer(kv_heads * hd, dim), per_layer(dim, heads * hd), per_layer(dim)
        w1, w2, w3 = per_layer(hidden, dim), per_layer(dim, hidden), per_layer(hidden, dim)
        final_norm = take(dim)
        take(seq_len, hd // 2), take(seq_len, hd // 2)  # run.c's legacy RoPE tables, unused
    else:
        attn_norm, ffn_norm, final_norm, embed = per_layer(dim), per_layer(dim), take(dim), take(vocab, dim)
        wq, wk, wv = per_layer(heads * hd, dim), per_layer(kv_heads * hd, dim), per_layer(kv_heads * hd, dim)
        wo, w1 = per_layer(dim, heads * hd), per_layer(hidden, dim)
        w2, w3 = per_layer(dim, hidden), per_layer(hidden, dim)
    if not shared:
        t["output.weight"] = take(vocab, dim)
    if at != len(data):
        sys.exit(f"{path}: the header implies {at} bytes, the file has {len(data)}")
    t["token_embd.weight"], t["output_norm.weight"] = embed, final_norm
    for i in range(layers):
        for name, w in [("attn_norm", attn_norm), ("attn_q", wq), ("attn_k", wk), ("attn_v", wv), ("attn_output", wo),
                        ("ffn_norm", ffn_norm), ("ffn_gate", w1), ("ffn_down", w2), ("ffn_up", w3)]:
            t[f"blk.{i}.{name}.weight"] = w[i]  # q and k rows: llama2.c's order is llama.cpp's
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": dim,
              "intermediate_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": seq_len,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": shared, "hidden_act": "silu"}
    return "llama", config, t


def read_safetensors(path):
    """name -> f32 tensor: an 8-byte little-endian header length, the JSON header, the raw data."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    data = bytearray(pathlib.Path(path).read_bytes())
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, entry in header.items():
        if entry["dtype"] not in dtypes:
            sys.exit(f"{path}: tensor {name} has dtype {entry['dtype']}; this reader knows {sorted(dtypes)}")
        begin, end = entry["data_offsets"]
        dtype = dtypes[entry["dtype"]]
        count = (end - begin) // torch.tensor([], dtype=dtype).element_size()
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=8 + n + begin) if count else torch.empty(0)
        out[name] = t.reshape(entry["shape"]).float()
    return out


def read_hf(folder):
    folder = pathlib.Path(folder)
    config = json.loads((folder / "config.json").read_text())
    index = folder / "model.safetensors.index.json"
    files = ["model.safetensors"]
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    hf = {}
    for f in files:
        hf.update(read_safetensors(folder / f))
    t = {}
    kind = config.get("model_type")
    if kind in ("llama", "mistral"):
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        t["token_embd.weight"], t["output_norm.weight"] = hf["model.embed_tokens.weight"], hf["model.norm.weight"]
        if not config.get("tie_word_embeddings", False):
            t["output.weight"] = hf["lm_head.weight"]
        for i in range(config["num_hidden_layers"]):
            p = f"model.layers.{i}."
            for name, hf_name in [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"),
                                  ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                                  ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                                  ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                                  ("ffn_down", "mlp.down_proj")]:
                t[f"blk.{i}.{name}.weight"] = hf[p + hf_name + ".weight"]
            t[f"blk.{i}.attn_q.weight"] = rotate_half_to_interleaved(t[f"blk.{i}.attn_q.weight"], heads)
            t[f"blk.{i}.attn_k.weight"] = rotate_half_to_interleaved(t[f"blk.{i}.attn_k.weight"], kv_heads)
        return "llama", config, t
    if kind == "gpt2":
        prefix = "transformer." if "transformer.wte.weight" in hf else ""
        def g(name):
            return hf[prefix + name]

        t["token_embd.weight"], t["position_embd.weight"] = g("wte.weight"), g("wpe.weight")
        t["output_norm.weight"], t["output_norm.bias"] = g("ln_f.weight"), g("ln_f.bias")
        if not config.get("tie_word_embeddings", True):
            t["output.weight"] = hf["lm_head.weight"]
        for i in range(config["n_layer"]):
            for name, hf_name, conv1d in [("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True),
                                          ("attn_output", "attn.c_proj", True), ("ffn_norm", "ln_2", False),
                                          ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)]:
                w = g(f"h.{i}.{hf_name}.weight")
                t[f"blk.{i}.{name}.weight"] = w.t().contiguous() if conv1d else w
                t[f"blk.{i}.{name}.bias"] = g(f"h.{i}.{hf_name}.bias")
        return "gpt2", config, t
    sys.exit(f"{folder}: model_type {kind!r}; this writer reads llama, mistral and gpt2 folders")


def hyperparameters(arch, config, tensors):
    """The {arch}.* metadata llama.cpp's convert writes (f32 values as the file stores them)."""
    if arch == "llama":
        heads = config["num_attention_heads"]
        hd = config.get("head_dim") or config["hidden_size"] // heads
        return [("llama.context_length", "u32", config["max_position_embeddings"]),
                ("llama.embedding_length", "u32", config["hidden_size"]),
                ("llama.block_count", "u32", config["num_hidden_layers"]),
                ("llama.feed_forward_length", "u32", config["intermediate_size"]),
                ("llama.attention.head_count", "u32", heads),
                ("llama.attention.head_count_kv", "u32", config.get("num_key_value_heads") or heads),
                ("llama.attention.key_length", "u32", hd), ("llama.attention.value_length", "u32", hd),
                ("llama.rope.dimension_count", "u32", hd),
                ("llama.attention.layer_norm_rms_epsilon", "f32", config.get("rms_norm_eps", 1e-6)),
                ("llama.rope.freq_base", "f32", config.get("rope_theta", 10000.0)),
                ("llama.vocab_size", "u32", tensors["token_embd.weight"].shape[0])]
    d = config["n_embd"]
    return [("gpt2.context_length", "u32", config.get("n_positions", config.get("n_ctx"))),
            ("gpt2.embedding_length", "u32", d), ("gpt2.block_count", "u32", config["n_layer"]),
            ("gpt2.feed_forward_length", "u32", config.get("n_inner") or 4 * d),
            ("gpt2.attention.head_count", "u32", config["n_head"]),
            ("gpt2.attention.layer_norm_epsilon", "f32", config.get("layer_norm_epsilon", 1e-5))]


# Tokenizers.

def protobuf_fields(data):
    """(field, wire type, value) of a protocol-buffer message: varints as ints, fixed32 as bytes,
    length-delimited as bytes."""
    at = 0

    def varint():
        nonlocal at
        v = shift = 0
        while True:
            b = data[at]
            at += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while at < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, data[at:at + 8]
            at += 8
        elif wire == 2:
            n = varint()
            yield field, wire, data[at:at + n]
            at += n
        elif wire == 5:
            yield field, wire, data[at:at + 4]
            at += 4
        else:
            sys.exit(f"unsupported protobuf wire type {wire}")


def sentencepiece_metadata(path):
    """A SentencePiece BPE tokenizer.model (ModelProto: pieces 1 {piece 1, score 2, type 3},
    trainer_spec 2 {model_type 3}, normalizer_spec 3 {add_dummy_prefix 3, remove_extra_whitespaces 4})
    as llama.cpp's "llama" vocabulary: the types are SentencePiece's (1 normal ... 6 byte)."""
    tokens, scores, types = [], [], []
    add_dummy_prefix = remove_extra_whitespaces = True
    for field, _, value in protobuf_fields(pathlib.Path(path).read_bytes()):
        if field == 1:
            piece, score, kind = b"", 0.0, 1
            for f, _, v in protobuf_fields(value):
                if f == 1:
                    piece = v
                elif f == 2:
                    score = struct.unpack("<f", v)[0]
                elif f == 3:
                    kind = v
            tokens.append(piece.decode())
            scores.append(score)
            types.append(kind)
        elif field == 2:
            for f, _, v in protobuf_fields(value):
                if f == 3 and v != 2:
                    sys.exit(f"{path}: not a BPE SentencePiece model (model_type {v})")
        elif field == 3:
            for f, _, v in protobuf_fields(value):
                if f == 3:
                    add_dummy_prefix = v != 0
                elif f == 4:
                    remove_extra_whitespaces = v != 0
    special = {"<unk>": "unknown_token_id", "<s>": "bos_token_id", "</s>": "eos_token_id"}
    ids = [(f"tokenizer.ggml.{special[p]}", "u32", i)
           for i, p in enumerate(tokens) if p in special and types[i] in (2, 3)]
    return [("tokenizer.ggml.model", "string", "llama"), ("tokenizer.ggml.tokens", "[string", tokens),
            ("tokenizer.ggml.scores", "[f32", scores), ("tokenizer.ggml.token_type", "[i32", types),
            ("tokenizer.ggml.add_space_prefix", "bool", add_dummy_prefix),
            ("tokenizer.ggml.remove_extra_whitespaces", "bool", remove_extra_whitespaces)] + ids


def bpe_metadata(folder):
    """GPT-2's byte-level BPE files as llama.cpp's "gpt2" vocabulary with its "gpt-2" pre-tokenizer."""
    folder = pathlib.Path(folder)
    for vocab, merges in [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")]:
        if (folder / vocab).exists() and (folder / merges).exists():
            break
    else:
        sys.exit(f"{folder}: neither vocab.json + merges.txt nor encoder.json + vocab.bpe")
    ids = json.loads((folder / vocab).read_text(encoding="utf-8"))
    tokens = sorted(ids, key=ids.get)
    if [ids[t] for t in tokens] != list(range(len(tokens))):
        sys.exit(f"{folder / vocab}: ids are not 0..{len(tokens) - 1}")
    lines = [line for line in (folder / merges).read_text(encoding="utf-8").split("\n")
             if line and not line.startswith("#version")]
    types = [3 if t == "<|endoftext|>" else 1 for t in tokens]
    out = [("tokenizer.ggml.model", "string", "gpt2"), ("tokenizer.ggml.pre", "string", "gpt-2"),
           ("tokenizer.ggml.tokens", "[string", tokens), ("tokenizer.ggml.token_type", "[i32", types),
           ("tokenizer.ggml.merges", "[string", lines)]
    if "<|endoftext|>" in ids:
        out += [("tokenizer.ggml.bos_token_id", "u32", ids["<|endoftext|>"]),
                ("tokenizer.ggml.eos_token_id", "u32", ids["<|endoftext|>"])]
    return out


# The container.

SCALARS = {"u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"), "u64": (10, "<Q")}


def gguf_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(kind, value):
    """The value type and value of one metadata entry; "[T" is an array of T."""
    if kind == "string":
        return struct.pack("<I", 8) + gguf_string(value)
    if kind.startswith("["):
        element = kind[1:]
        body = b"".join(gguf_string(v) if element == "string" else struct.pack(SCALARS[element][1], v) for v in value)
        element_id = 8 if element == "string" else SCALARS[element][0]
        return struct.pack("<IIQ", 9, element_id, len(value)) + body
    type_id, fmt = SCALARS[kind]
    return struct.pack("<I", type_id) + struct.pack(fmt, value)


def write_gguf(path, metadata, tensors):
    """tensors: (name, torch shape, type name, bytes). Offsets are multiples of ALIGNMENT."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, kind, value in metadata:
        out += gguf_string(key) + gguf_value(kind, value)
    offset, blobs = 0, []
    for name, shape, kind, data in tensors:
        dims = list(reversed(shape))  # ggml lists the row (the fastest dimension) first
        out += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", TYPES[kind][0], offset)
        padded = data + b"\0" * (-len(data) % ALIGNMENT)
        blobs.append(padded)
        offset += len(padded)
    out += b"\0" * (-len(out) % ALIGNMENT)
    pathlib.Path(path).write_bytes(bytes(out) + b"".join(blobs))


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        raw = to_bytes(tensors[name].float())
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def hugging_face_tensors(arch, config, decoded):
    """The dequantised tensors back under Hugging Face's names and layouts."""
    hf = {}
    if arch == "llama":
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        hf["model.embed_tokens.weight"] = decoded["token_embd.weight"]
        hf["model.norm.weight"] = decoded["output_norm.weight"]
        if "output.weight" in decoded:
            hf["lm_head.weight"] = decoded["output.weight"]
        for i in range(config["num_hidden_layers"]):
            p, b = f"model.layers.{i}.", f"blk.{i}."
            hf[p + "self_attn.q_proj.weight"] = interleaved_to_rotate_half(decoded[b + "attn_q.weight"], heads)
            hf[p + "self_attn.k_proj.weight"] = interleaved_to_rotate_half(decoded[b + "attn_k.weight"], kv_heads)
            for name, hf_name in [("attn_norm", "input_layernorm"), ("attn_v", "self_attn.v_proj"),
                                  ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                                  ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                                  ("ffn_down", "mlp.down_proj")]:
                hf[p + hf_name + ".weight"] = decoded[b + name + ".weight"]
        return hf
    hf["wte.weight"], hf["wpe.weight"] = decoded["token_embd.weight"], decoded["position_embd.weight"]
    hf["ln_f.weight"], hf["ln_f.bias"] = decoded["output_norm.weight"], decoded["output_norm.bias"]
    if "output.weight" in decoded:
        hf["lm_head.weight"] = decoded["output.weight"]
    for i in range(config["n_layer"]):
        for name, hf_name, conv1d in [("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True),
                                      ("attn_output", "attn.c_proj", True), ("ffn_norm", "ln_2", False),
                                      ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)]:
            w = decoded[f"blk.{i}.{name}.weight"]
            hf[f"h.{i}.{hf_name}.weight"] = w.t().contiguous() if conv1d else w
            hf[f"h.{i}.{hf_name}.bias"] = decoded[f"blk.{i}.{name}.bias"]
    return hf


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a llama2.c .bin, or a Hugging Face Llama or GPT-2 folder")
    parser.add_argument("--out", required=True, help="the .gguf file to write")
    parser.add_argument("--type", default="f32", choices=sorted(TYPES), help="the matrices' type (default f32)")
    parser.add_argument("--tokenizer", help="a SentencePiece tokenizer.model to store as tokenizer.ggml.* metadata")
    parser.add_argument("--bpe", help="a folder of GPT-2 BPE files to store as tokenizer.ggml.* metadata")
    parser.add_argument("--dequantised-out", help="a folder for the dequantised weights as a Hugging Face model")
    args = parser.parse_args()
    if sys.byteorder != "little":
        sys.exit("GGUF and safetensors are little-endian; this script writes the host's bytes")
    path = pathlib.Path(args.model)
    arch, config, tensors = read_llama2c(path) if path.is_file() else read_hf(path)
    metadata = [("general.architecture", "string", arch), ("general.name", "string", path.stem),
                ("general.alignment", "u32", ALIGNMENT)] + hyperparameters(arch, config, tensors)
    if args.tokenizer:
        metadata += sentencepiece_metadata(args.tokenizer)
    if args.bpe:
        metadata += bpe_metadata(args.bpe)

    written, decoded = [], {}
    for name, w in tensors.items():
        kind = storage_type(name, w, args.type)
        data, decoded[name] = QUANTISERS[kind](w.float().contiguous())
        written.append((name, list(w.shape), kind, data))
    write_gguf(args.out, metadata, written)

    if args.dequantised_out:
        # The config the GGUF's metadata amounts to: its f32 epsilon and θ, its tying.
        config = dict(config, tie_word_embeddings="output.weight" not in tensors)
        if arch == "llama":
            config["rms_norm_eps"] = f32(config.get("rms_norm_eps", 1e-6))
            config["rope_theta"] = f32(config.get("rope_theta", 10000.0))
        else:
            config["layer_norm_epsilon"] = f32(config.get("layer_norm_epsilon", 1e-5))
        folder = pathlib.Path(args.dequantised_out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_safetensors(folder / "model.safetensors", hugging_face_tensors(arch, config, decoded))


if __name__ == "__main__":
    main()
