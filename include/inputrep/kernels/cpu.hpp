#pragma once
// Fused CPU kernels for f32 tensors outside any autograd graph: the written-out inversion step on
// the CPU. Why: at d_model = 64 a Llama block's step was about a hundred ATen calls of 1–2 µs each
// (dispatch, allocation, one pass over memory per call) around ~1.5 MFLOP of arithmetic. These loops
// do each elementwise stage and the whole attention in one pass, leaving matrix products to BLAS.
// The ATen expressions beside each call site in the model files are the reference (and the path
// for CUDA, bf16 and autograd); tests compare the two.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <inputrep/core/torch.hpp>

namespace inputrep {

// The head layout of a packed q|k|v row: H query heads, then KV key heads, then KV value heads,
// each of hd; query head h reads kv head h / (H / KV).
struct Heads {
    std::int64_t batch, tokens, heads, kv_heads, head_size;
    std::int64_t group() const { return heads / kv_heads; }
    std::int64_t width() const { return (heads + 2 * kv_heads) * head_size; }
};

// What attention's input gradient needs: rotated queries [B, KV, g, T, hd], rotated keys and
// values [B, KV, 1, T, hd], probabilities [B, KV, g, T, T]: the layout of the ATen path's tape.
struct AttentionTape {
    at::Tensor q, k, v, p;
};

}  // namespace inputrep

namespace inputrep::cpu {

// Whether a tensor can go through these kernels: f32 on the CPU, with no graph to record.
inline bool applies(const at::Tensor& x) {
    return x.device().is_cpu() && x.scalar_type() == at::kFloat && !(at::GradMode::is_enabled() && x.requires_grad());
}

// The fused attention is plain loops (~10 GFLOP/s here); ATen's batched products run at BLAS speed
// after ~15 calls of overhead. Measured forward + gradient, one thread: the loops win while
// T²·hd ≤ ~4096 per head (8 heads of 8: T ≤ 22; 12 of 64: T ≤ 8; 32 of 128: T ≤ 5), the short
// prompts inversion works on, and lose up to 8× on long ones.
inline bool attention_applies(const at::Tensor& x, const Heads& s) {
    return applies(x) && s.tokens * s.tokens * s.head_size <= 4096;
}

namespace detail {
inline const float* in(const at::Tensor& t) { return t.data_ptr<float>(); }
inline float* out(at::Tensor& t) { return t.data_ptr<float>(); }
// Rows are independent: split them over libtorch's intra-op threads (inline when there is one).
template <class F>
void each_row(std::int64_t n, std::int64_t work_per_row, F&& f) {
    const std::int64_t grain = std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(1, work_per_row));
    at::parallel_for(0, n, grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) f(i);
    });
}
}  // namespace detail

// RMSNorm over the last dimension: y = w·x·r, r = 1/sqrt(mean(x²) + eps), r kept for the gradient.
inline at::Tensor rms_norm(const at::Tensor& x_, const at::Tensor& w_, double eps, at::Tensor& r) {
    const at::Tensor x = x_.contiguous(), w = w_.contiguous();
    const std::int64_t D = x.size(-1), rows = x.numel() / D;
    at::Tensor y = at::empty_like(x);
    auto r_shape = x.sizes().vec();
    r_shape.back() = 1;
    r = at::empty(r_shape, x.options());
    const float *xp = detail::in(x), *wp = detail::in(w);
    float *yp = detail::out(y), *rp = detail::out(r);
    detail::each_row(rows, D, [&](std::int64_t i) {
        const float* xi = xp + i * D;
        float ss = 0;
        for (std::int64_t j = 0; j < D; ++j) ss += xi[j] * xi[j];
        const float ri = 1.0f / std::sqrt(ss / float(D) + float(eps));
        rp[i] = ri;
        for (std::int64_t j = 0; j < D; ++j) yp[i * D + j] = xi[j] * ri * wp[j];
    });
    return y;
}

// residual + ∂(Σ dy·RMSNorm(x))/∂x = residual + r·g − x·r³·mean(g·x), g = dy·w.
inline at::Tensor rms_norm_input_grad(const at::Tensor& dy_, const at::Tensor& x_, const at::Tensor& r_,
                                      const at::Tensor& w_, const at::Tensor& residual_) {
    const at::Tensor dy = dy_.contiguous(), x = x_.contiguous(), r = r_.contiguous(), w = w_.contiguous(),
                     res = residual_.contiguous();
    const std::int64_t D = x.size(-1), rows = x.numel() / D;
    at::Tensor dx = at::empty_like(x);
    const float *dyp = detail::in(dy), *xp = detail::in(x), *rp = detail::in(r), *wp = detail::in(w),
                *resp = detail::in(res);
    float* dxp = detail::out(dx);
    detail::each_row(rows, D, [&](std::int64_t i) {
        const float *dyi = dyp + i * D, *xi = xp + i * D;
        float gx = 0;
        for (std::int64_t j = 0; j < D; ++j) gx += dyi[j] * wp[j] * xi[j];
        const float ri = rp[i], c = ri * ri * ri * gx / float(D);
        for (std::int64_t j = 0; j < D; ++j) dxp[i * D + j] = resp[i * D + j] + ri * dyi[j] * wp[j] - xi[j] * c;
    });
    return dx;
}

// SwiGLU's gate: from gate|up [.., 2F] to silu(gate)·up [.., F].
inline at::Tensor swiglu(const at::Tensor& gate_up_) {
    const at::Tensor gu = gate_up_.contiguous();
    const std::int64_t F = gu.size(-1) / 2, rows = gu.numel() / (2 * F);
    auto shape = gu.sizes().vec();
    shape.back() = F;
    at::Tensor a = at::empty(shape, gu.options());
    const float* gp = detail::in(gu);
    float* ap = detail::out(a);
    detail::each_row(rows, F, [&](std::int64_t i) {
        const float *g = gp + i * 2 * F, *u = g + F;
        for (std::int64_t j = 0; j < F; ++j) ap[i * F + j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
    });
    return a;
}

// ∂/∂(gate|up) of Σ da·silu(gate)·up: (da·up·σ(g)·(1 + g·(1 − σ(g))) | da·silu(g)).
inline at::Tensor swiglu_input_grad(const at::Tensor& da_, const at::Tensor& gate_up_) {
    const at::Tensor da = da_.contiguous(), gu = gate_up_.contiguous();
    const std::int64_t F = gu.size(-1) / 2, rows = gu.numel() / (2 * F);
    at::Tensor dgu = at::empty_like(gu);
    const float *dap = detail::in(da), *gp = detail::in(gu);
    float* dp = detail::out(dgu);
    detail::each_row(rows, F, [&](std::int64_t i) {
        const float *g = gp + i * 2 * F, *u = g + F, *dai = dap + i * F;
        float *dg = dp + i * 2 * F, *du = dg + F;
        for (std::int64_t j = 0; j < F; ++j) {
            const float s = 1.0f / (1.0f + std::exp(-g[j]));
            dg[j] = dai[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
            du[j] = dai[j] * g[j] * s;
        }
    });
    return dgu;
}

namespace detail {
// Rotate-half rotary embedding of one head at position t: (x_i, x_{i+h}) turns by the angle whose
// cos/sin the tables hold, h = hd/2. `inverse` turns back (the transpose), for the gradient.
inline void rotate(const float* x, float* y, const float* cos, const float* sin, std::int64_t hd, bool inverse) {
    const std::int64_t h = hd / 2;
    const float sign = inverse ? -1.0f : 1.0f;
    for (std::int64_t i = 0; i < h; ++i) {
        const float a = x[i], b = x[i + h];
        y[i] = a * cos[i] - sign * b * sin[i];
        y[i + h] = b * cos[i + h] + sign * a * sin[i + h];
    }
}
}  // namespace detail

// Softmax attention from packed q|k|v [B, T, width]: RoPE (rotate-half, tables [T, hd]; undefined
// for none), scores q·kᵀ/√hd plus an additive [T, T] mask (undefined for none), and the heads merged
// back to [B, T, H·hd].
inline at::Tensor attention(const at::Tensor& qkv_, const at::Tensor& cos_, const at::Tensor& sin_,
                            const at::Tensor& mask_, const Heads& s, AttentionTape& tape) {
    const at::Tensor qkv = qkv_.contiguous();
    const bool rotary = cos_.defined();
    const at::Tensor cos = rotary ? cos_.contiguous() : at::Tensor(), sin = rotary ? sin_.contiguous() : at::Tensor();
    const at::Tensor mask = mask_.defined() ? mask_.contiguous() : at::Tensor();
    const std::int64_t B = s.batch, T = s.tokens, H = s.heads, KV = s.kv_heads, hd = s.head_size, g = s.group(),
                       W = s.width();
    const auto opt = qkv.options();
    tape.q = at::empty({B, KV, g, T, hd}, opt);
    tape.k = at::empty({B, KV, 1, T, hd}, opt);
    tape.v = at::empty({B, KV, 1, T, hd}, opt);
    tape.p = at::empty({B, KV, g, T, T}, opt);
    at::Tensor y = at::empty({B, T, H * hd}, opt);
    const float *src = detail::in(qkv), *cp = rotary ? detail::in(cos) : nullptr,
                *sp = rotary ? detail::in(sin) : nullptr;
    const float* mp = mask.defined() ? detail::in(mask) : nullptr;
    float *qp = detail::out(tape.q), *kp = detail::out(tape.k), *vp = detail::out(tape.v), *pp = detail::out(tape.p),
          *yp = detail::out(y);
    const float scale = 1.0f / std::sqrt(float(hd));
    // Unpack into head-major layout, rotating queries and keys.
    auto place = [&](const float* x, float* dst, std::int64_t t) {
        if (rotary)
            detail::rotate(x, dst, cp + t * hd, sp + t * hd, hd, false);
        else
            std::copy(x, x + hd, dst);
    };
    detail::each_row(B * T, W, [&](std::int64_t bt) {
        const std::int64_t b = bt / T, t = bt % T;
        const float* row = src + bt * W;
        for (std::int64_t h = 0; h < H; ++h) place(row + h * hd, qp + (((b * KV + h / g) * g + h % g) * T + t) * hd, t);
        for (std::int64_t j = 0; j < KV; ++j) {
            place(row + (H + j) * hd, kp + ((b * KV + j) * T + t) * hd, t);
            std::copy(row + (H + KV + j) * hd, row + (H + KV + j + 1) * hd, vp + ((b * KV + j) * T + t) * hd);
        }
    });
    // One query head per task: scores, softmax, weighted values.
    detail::each_row(B * H, T * T * hd, [&](std::int64_t bh) {
        const std::int64_t b = bh / H, h = bh % H, j = h / g;
        const float *q = qp + (((b * KV + j) * g + h % g) * T) * hd, *k = kp + (b * KV + j) * T * hd,
                    *v = vp + (b * KV + j) * T * hd;
        float* p = pp + (((b * KV + j) * g + h % g) * T) * T;
        for (std::int64_t t = 0; t < T; ++t) {
            float* pt = p + t * T;
            float top = -std::numeric_limits<float>::infinity();
            for (std::int64_t u = 0; u < T; ++u) {
                float dot = 0;
                for (std::int64_t i = 0; i < hd; ++i) dot += q[t * hd + i] * k[u * hd + i];
                pt[u] = dot * scale + (mp ? mp[t * T + u] : 0.0f);
                top = std::max(top, pt[u]);
            }
            float sum = 0;
            for (std::int64_t u = 0; u < T; ++u) sum += (pt[u] = std::exp(pt[u] - top));
            float* yt = yp + (b * T + t) * H * hd + h * hd;
            std::fill(yt, yt + hd, 0.0f);
            for (std::int64_t u = 0; u < T; ++u) {
                pt[u] /= sum;
                for (std::int64_t i = 0; i < hd; ++i) yt[i] += pt[u] * v[u * hd + i];
            }
        }
    });
    return y;
}

// ∂(Σ dy·attention)/∂(q|k|v), packed like attention's input: softmax's backward
// ds = p·(dp − Σ p·dp)/√hd, then dq = ds·k, dk = dsᵀ·q summed over the query heads a kv head serves,
// dv = pᵀ·dy likewise, and the rotations turned back.
inline at::Tensor attention_input_grad(const at::Tensor& dy_, const at::Tensor& cos_, const at::Tensor& sin_,
                                       const Heads& s, const AttentionTape& tape) {
    const at::Tensor dy = dy_.contiguous(), q = tape.q.contiguous(), k = tape.k.contiguous(), v = tape.v.contiguous(),
                     p = tape.p.contiguous();
    const bool rotary = cos_.defined();
    const at::Tensor cos = rotary ? cos_.contiguous() : at::Tensor(), sin = rotary ? sin_.contiguous() : at::Tensor();
    const std::int64_t B = s.batch, T = s.tokens, H = s.heads, KV = s.kv_heads, hd = s.head_size, g = s.group(),
                       W = s.width();
    at::Tensor dqkv = at::empty({B, T, W}, dy.options());
    const float *dyp = detail::in(dy), *qp = detail::in(q), *kp = detail::in(k), *vp = detail::in(v),
                *pp = detail::in(p);
    const float *cp = rotary ? detail::in(cos) : nullptr, *sp = rotary ? detail::in(sin) : nullptr;
    float* out = detail::out(dqkv);
    const float scale = 1.0f / std::sqrt(float(hd));
    auto unplace = [&](const float* dz, float* dst, std::int64_t t) {
        if (rotary)
            detail::rotate(dz, dst, cp + t * hd, sp + t * hd, hd, true);
        else
            std::copy(dz, dz + hd, dst);
    };
    // One kv head (and the query heads it serves) per task: each writes its own columns.
    detail::each_row(B * KV, g * T * T * hd, [&](std::int64_t bj) {
        const std::int64_t b = bj / KV, j = bj % KV;
        const float *kj = kp + bj * T * hd, *vj = vp + bj * T * hd;
        std::vector<float> dk(T * hd, 0.0f), dv(T * hd, 0.0f), ds(T), dq(hd);
        for (std::int64_t gi = 0; gi < g; ++gi) {
            const std::int64_t h = j * g + gi;
            const float *qh = qp + ((bj * g + gi) * T) * hd, *ph = pp + ((bj * g + gi) * T) * T;
            for (std::int64_t t = 0; t < T; ++t) {
                const float *pt = ph + t * T, *dyt = dyp + (b * T + t) * H * hd + h * hd;
                float weighted = 0;
                for (std::int64_t u = 0; u < T; ++u) {
                    float dp = 0;
                    for (std::int64_t i = 0; i < hd; ++i) dp += dyt[i] * vj[u * hd + i];
                    ds[u] = dp;
                    weighted += pt[u] * dp;
                    for (std::int64_t i = 0; i < hd; ++i) dv[u * hd + i] += pt[u] * dyt[i];
                }
                std::fill(dq.begin(), dq.end(), 0.0f);
                for (std::int64_t u = 0; u < T; ++u) {
                    const float d = pt[u] * (ds[u] - weighted) * scale;
                    for (std::int64_t i = 0; i < hd; ++i) {
                        dq[i] += d * kj[u * hd + i];
                        dk[u * hd + i] += d * qh[t * hd + i];
                    }
                }
                unplace(dq.data(), out + (b * T + t) * W + h * hd, t);
            }
        }
        for (std::int64_t t = 0; t < T; ++t) {
            unplace(dk.data() + t * hd, out + (b * T + t) * W + (H + j) * hd, t);
            std::copy(dv.data() + t * hd, dv.data() + (t + 1) * hd, out + (b * T + t) * W + (H + KV + j) * hd);
        }
    });
    return dqkv;
}

// Per-item distances between out and target [B, ...] and their gradient, in two passes over the
// data: w_l1·Σ|Δ| + w_l2·‖Δ‖₂ + w_cos·(1 − |cos φ|) (1 − cos φ when not absolute). Every metric of
// policy/metric.hpp is one choice of weights, so combining them costs no extra pass.
struct MetricWeights {
    double l1 = 0, l2 = 0, cosine = 0;
    bool absolute = true;
};

inline std::pair<at::Tensor, at::Tensor> metric(const at::Tensor& out_, const at::Tensor& target_,
                                                const MetricWeights& m) {
    const at::Tensor o = out_.contiguous(), t = target_.contiguous();
    const std::int64_t B = o.size(0), N = o.numel() / std::max<std::int64_t>(B, 1);
    at::Tensor value = at::empty({B}, o.options()), grad = at::empty(o.sizes(), o.options());
    const float *op = detail::in(o), *tp = detail::in(t);
    float *vp = detail::out(value), *gp = detail::out(grad);
    detail::each_row(B, N, [&](std::int64_t b) {
        const float *ob = op + b * N, *tb = tp + b * N;
        double l1 = 0, l2 = 0, ot = 0, oo = 0, tt = 0;
        for (std::int64_t i = 0; i < N; ++i) {
            const double d = double(ob[i]) - double(tb[i]);
            l1 += std::abs(d), l2 += d * d;
            ot += double(ob[i]) * tb[i], oo += double(ob[i]) * ob[i], tt += double(tb[i]) * tb[i];
        }
        // As the ATen path: norms clamped at 1e-12 for the cosine, 1e-30 for the L2 gradient.
        const double n2 = std::sqrt(l2), no = std::max(std::sqrt(oo), 1e-12), nt = std::max(std::sqrt(tt), 1e-12);
        const double cos = ot / (no * nt), sign = m.absolute ? (cos > 0 ? 1.0 : cos < 0 ? -1.0 : 0.0) : 1.0;
        vp[b] = float(m.l1 * l1 + m.l2 * n2 + m.cosine * (1.0 - (m.absolute ? std::abs(cos) : cos)));
        // ∂cos/∂o = t/(|o||t|) − cos·o/|o|²
        const float a_t = float(-m.cosine * sign / (no * nt)), a_o = float(m.cosine * sign * cos / (no * no));
        const float a_l2 = float(m.l2 / std::max(n2, 1e-30)), a_l1 = float(m.l1);
        float* gb = gp + b * N;
        for (std::int64_t i = 0; i < N; ++i) {
            const float d = ob[i] - tb[i];
            gb[i] = a_t * tb[i] + a_o * ob[i] + a_l2 * d + a_l1 * float((d > 0) - (d < 0));
        }
    });
    return {value, grad};
}

// One Adam step in place, as torch.optim.Adam computes it: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
// x ← x − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε). All four tensors contiguous and of one size.
inline void adam_step(at::Tensor& x, const at::Tensor& g_, at::Tensor& m, at::Tensor& v, double beta1, double beta2,
                      double eps, double lr, int t) {
    const at::Tensor g = g_.contiguous();
    // 1 − β in double before rounding: float(1 − 0.999) is exact to 1e-8, 1 − float(0.999) only to 1e-5.
    const float b1 = float(beta1), b2 = float(beta2), c1 = float(1 - beta1), c2 = float(1 - beta2), e = float(eps);
    const float step = float(lr / (1 - std::pow(beta1, t))), root_bias2 = float(std::sqrt(1 - std::pow(beta2, t)));
    float *xp = detail::out(x), *mp = detail::out(m), *vp = detail::out(v);
    const float* gp = detail::in(g);
    const std::int64_t n = x.numel();
    at::parallel_for(0, n, 32768, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            mp[i] = b1 * mp[i] + c1 * gp[i];
            vp[i] = b2 * vp[i] + c2 * gp[i] * gp[i];
            xp[i] -= step * mp[i] / (std::sqrt(vp[i]) / root_bias2 + e);
        }
    });
}

}  // namespace inputrep::cpu
