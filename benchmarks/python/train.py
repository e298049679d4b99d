#!/usr/bin/python3
"""Training throughput of PyTorch eager on the models `inputrep train` trains, same shape, batch,
context, optimizer (AdamW, clipping) and thread count: the baseline of the training rows in
benchmarks/compare. Prints one JSON object: {"family", "tokens_per_second", ...}.

    python3 benchmarks/python/train.py --family gpt2 --d 128 --layers 4 --heads 4 --vocab 4096 --context 64 --batch 16 --steps 40
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class GPT2Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask):
        B, T, D = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        p = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // self.heads) + mask, dim=-1)
        x = x + self.attn_proj((p @ v).transpose(1, 2).reshape(B, T, D))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(a.vocab, a.d), nn.Embedding(a.context, a.d)
        self.h = nn.ModuleList(GPT2Block(a.d, a.heads) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(a.d)

    def forward(self, ids):
        T = ids.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x, mask)
        return self.ln_f(x) @ self.wte.weight.t()


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class LlamaBlock(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.qkv, self.o_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.gate_up, self.down_proj = nn.Linear(d, 2 * ff, bias=False), nn.Linear(ff, d, bias=False)

    def forward(self, x, mask, cos, sin):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in self.qkv(self.input_layernorm(x)).split(D, dim=2))
        rot = lambda t: torch.cat((-t[..., hd // 2:], t[..., :hd // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        p = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd) + mask, dim=-1)
        x = x + self.o_proj((p @ v).transpose(1, 2).reshape(B, T, D))
        gate, up = self.gate_up(self.post_attention_layernorm(x)).chunk(2, dim=-1)
        return x + self.down_proj(F.silu(gate) * up)


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.d)
        self.layers = nn.ModuleList(LlamaBlock(a.d, a.heads, a.ff or 4 * a.d) for _ in range(a.layers))
        self.norm, self.lm_head = RMSNorm(a.d), nn.Linear(a.d, a.vocab, bias=False)
        hd = a.d // a.heads
        angles = torch.outer(torch.arange(a.context, dtype=torch.float64), 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        angles = torch.cat((angles, angles), -1)
        self.cos, self.sin = angles.cos().float(), angles.sin().float()

    def forward(self, ids):
        T = ids.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed_tokens(ids)
        for b in self.layers:
            x = b(x, mask, self.cos[:T], self.sin[:T])
        return self.lm_head(self.norm(x))


class MixerBlock(nn.Module):
    def __init__(self, d, context):
        super().__init__()
        self.seq_layernorm, self.patch_layernorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.conv = nn.Conv1d(context, context, 1)
        self.patch_ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        T = x.shape[1]
        w = self.conv.weight.squeeze(-1)[:T, :T].tril()
        x = x + (w @ self.seq_layernorm(x) + self.conv.bias[:T].unsqueeze(-1))
        return x + self.patch_ff(self.patch_layernorm(x))


class Mixer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.vocab, a.d)
        self.mixerblocks = nn.ModuleList(MixerBlock(a.d, a.context) for _ in range(a.layers))
        self.lm_head = nn.Linear(a.d, a.vocab, bias=False)

    def forward(self, ids):
        x = self.wte(ids)
        for b in self.mixerblocks:
            x = b(x)
        return self.lm_head(x)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=["gpt2", "llama", "mixer"], required=True)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=0, help="Llama's intermediate size (default 4·d)")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = {"gpt2": GPT2, "llama": Llama, "mixer": Mixer}[a.family](a)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    rest = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    rows = torch.randint(a.vocab, (1024, a.context + 1))
    order = torch.randperm(1024)

    def step(s):
        batch = rows.index_select(0, order[(s * a.batch + torch.arange(a.batch)) % 1024])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for s in range(a.warmup_steps):
        step(s)
    start = time.perf_counter()
    for s in range(a.steps):
        step(a.warmup_steps + s)
    seconds = time.perf_counter() - start
    print(json.dumps({"family": a.family, "tokens_per_second": a.steps * a.batch * a.context / seconds, "steps": a.steps,
                      "batch": a.batch, "context": a.context, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
