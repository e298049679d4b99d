#pragma once
// A block's linear weight and the two products every family computes with it:
//   y = x·Wᵀ + b           W [out, in]; GPT-2's Conv1D stores Wᵀ [in, out] and is marked conv1d
//   ∂(Σ dy·y)/∂x = dy·W    the input gradient, written out by a family or taken by autograd
// held the way Placement::weights asks:
//   dense     as loaded, in the compute dtype; but a GGUF file's quantised matrices (Q8_0, Q4_0,
//             Q4_K, Q6_K) stay in their blocks on the CPU, as the file stores them.
//   int8      weight-only, per output channel: q_r = round(127·W_r / a_r) with a_r = max_c |W_rc|, and
//             W ≈ q·a/127 (bitsandbytes' row-wise absmax, its CB and SCB). A row of x gives the same
//             output whatever else is in the batch, so exact search verifies a candidate anywhere.
//   llm_int8  the same int8 weights multiplied as LLM.int8 (Dettmers et al. 2022; bitsandbytes'
//             Linear8bitLt with threshold 6.0, the seed's load_in_8bit): the columns c of the input
//             X [rows, in] where any |X_tc| ≥ 6 over all rows of the call are outliers, multiplied in
//             the compute dtype by the dequantised weight's columns; the rest of X is quantised per
//             row (absmax of its values under 6, 127 levels), multiplied in integers and rescaled by
//             both absmaxes. The outlier columns are chosen over the whole call, so a row's output
//             can change with the other rows beside it. The input gradient goes through the
//             dequantised weight, as bitsandbytes' backward does.
// The quantised products dequantise a band of rows at a time: no dense copy of W is ever whole, in
// the forward pass or in the gradient.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <inputrep/core/device.hpp>
#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/io/gguf_format.hpp>

#include <torch/csrc/autograd/custom_function.h>

namespace inputrep {

// Output channels of a quantised matrix: int8 rows with a/127 per row, or a GGUF file's blocks as
// stored, [out, bytes per row].
struct QuantisedRows {
    at::Tensor data;                       // int8 [out, in], or uint8 [out, bytes per row]
    at::Tensor scale;                      // int8: a/127 per row (f32)
    std::optional<gguf::TensorType> type;  // the GGUF blocks' type; none: int8
    std::int64_t in = 0;

    std::int64_t out() const { return data.size(0); }

    // Rows [r, r + n) in bands of at most 4 Mi weights (16 MiB in f32).
    std::vector<std::pair<std::int64_t, std::int64_t>> bands() const {
        const std::int64_t rows = std::max<std::int64_t>(1, (std::int64_t{1} << 22) / std::max<std::int64_t>(in, 1));
        std::vector<std::pair<std::int64_t, std::int64_t>> b;
        for (std::int64_t r = 0; r < out(); r += rows) b.emplace_back(r, std::min(rows, out() - r));
        return b;
    }

    // Rows [r, r + n) dequantised, in `dtype`.
    at::Tensor dequantised(std::int64_t r, std::int64_t n, at::ScalarType dtype) const {
        if (!type) return data.narrow(0, r, n).to(at::kFloat).mul_(scale.narrow(0, r, n).unsqueeze(1)).to(dtype);
        auto bytes = data.narrow(0, r, n).contiguous();
        auto w = at::empty({n, in}, at::kFloat);
        gguf::dequantize(*type, {reinterpret_cast<const std::byte*>(bytes.data_ptr()), std::size_t(bytes.nbytes())},
                         {w.data_ptr<float>(), std::size_t(w.numel())});
        return w.to(dtype);
    }

    QuantisedRows narrow(std::int64_t r, std::int64_t n) const {
        return {data.narrow(0, r, n), scale.defined() ? scale.narrow(0, r, n) : scale, type, in};
    }
};

// The products over a matrix held as quantised parts (one, or several stacked: Llama's q|k|v).
class QuantisedMatrix {
public:
    std::vector<QuantisedRows> parts;
    bool llm = false;  // int8 parts multiplied as LLM.int8

    static constexpr double outlier_threshold = 6.0;  // bitsandbytes' llm_int8_threshold default

    std::int64_t out() const {
        std::int64_t n = 0;
        for (const auto& p : parts) n += p.out();
        return n;
    }

    // x [rows, in] · Wᵀ in x's dtype.
    at::Tensor product(const at::Tensor& x) const {
        const auto dtype = x.scalar_type();
        std::vector<at::Tensor> ys;
        Int8Input input;
        for (const auto& p : parts)
            for (auto [r, n] : p.bands()) {
                if (!llm || p.type) {
                    ys.push_back(at::mm(x, p.dequantised(r, n, dtype).t()));
                    continue;
                }
                if (!input.xq.defined()) input = Int8Input(x);
                auto y = at::mm(input.xq, p.data.narrow(0, r, n).to(at::kFloat).t())
                             .mul_(input.row_scale)
                             .mul_(p.scale.narrow(0, r, n));
                if (input.x_outliers.defined())
                    y.add_(at::mm(input.x_outliers, p.dequantised(r, n, dtype).index_select(1, input.outliers).t()));
                ys.push_back(y.to(dtype));
            }
        return ys.size() == 1 ? ys.front() : at::cat(ys, 1);
    }

    // dy [rows, out] · W in dy's dtype.
    at::Tensor input_grad(const at::Tensor& dy) const {
        at::Tensor dx;
        std::int64_t offset = 0;
        for (const auto& p : parts) {
            for (auto [r, n] : p.bands()) {
                auto part = at::mm(dy.narrow(1, offset + r, n), p.dequantised(r, n, dy.scalar_type()));
                dx = dx.defined() ? dx.add_(part) : part;
            }
            offset += p.out();
        }
        return dx;
    }

private:
    // LLM.int8's input, once per call: outlier columns, the rest quantised per row.
    struct Int8Input {
        at::Tensor xq, row_scale, outliers, x_outliers;
        Int8Input() = default;
        explicit Int8Input(const at::Tensor& x) {
            auto xf = x.to(at::kFloat, false, true);  // a copy: quantised in place below
            const auto big = xf.abs() >= outlier_threshold;
            outliers = big.any(0).nonzero().squeeze(1);
            row_scale = xf.masked_fill(big, 0).abs_().amax(1, true).div_(127);
            // Integers held in f32: exact products, sums rounded only past 2^24 (about 1,000 terms at full scale).
            xq = xf.div_(row_scale.clamp_min(1e-30)).round_().clamp_(-127, 127);
            if (outliers.numel() > 0) {
                xq.index_fill_(1, outliers, 0);
                x_outliers = x.index_select(1, outliers);
            }
        }
    };
};

namespace detail {

// The product under autograd: the gradient to x alone, through the dequantised weight, band by band.
struct SavedMatrix : torch::CustomClassHolder {
    explicit SavedMatrix(QuantisedMatrix m) : matrix(std::move(m)) {}
    QuantisedMatrix matrix;
};
struct QuantisedLinear : torch::autograd::Function<QuantisedLinear> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const QuantisedMatrix& m) {
        ctx->saved_data["matrix"] = c10::IValue::make_capsule(c10::make_intrusive<SavedMatrix>(m));
        return m.product(x);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list dy) {
        const auto saved = c10::static_intrusive_pointer_cast<SavedMatrix>(ctx->saved_data["matrix"].toCapsule());
        return {saved->matrix.input_grad(dy[0]), {}};
    }
};

}  // namespace detail

class Weight {
public:
    enum Layout { linear, conv1d };  // conv1d: stored [in, out], as GPT-2's Conv1D

    Weight(Layout layout = linear) : layout_(layout) {}

    // w (in this slot's layout) held as `how` asks; the 8-bit forms are quantised band by band and
    // dequantise into `dtype` (default: w's).
    void hold(at::Tensor w, Weights how, std::optional<at::ScalarType> dtype = std::nullopt) {
        dtype_ = dtype.value_or(w.scalar_type());
        q_.llm = how == Weights::llm_int8;
        if (how == Weights::dense) {
            dense_ = std::move(w);
            return;
        }
        require(w.dim() == 2, "an 8-bit weight must be a matrix (got ", w.dim(), " dimensions)");
        const auto rows = layout_ == conv1d ? w.t() : w;  // [out, in]
        QuantisedRows q{at::empty(rows.sizes(), rows.options().dtype(at::kChar)),
                        at::empty({rows.size(0)}, rows.options().dtype(at::kFloat)), std::nullopt, rows.size(1)};
        for (auto [r, n] : q.bands()) {
            const auto band = rows.narrow(0, r, n).to(at::kFloat);
            const auto s = band.abs().amax(1).div_(127);
            q.scale.narrow(0, r, n).copy_(s);
            q.data.narrow(0, r, n).copy_(band.div(s.clamp_min(1e-30).unsqueeze(1)).round_().clamp_(-127, 127));
        }
        q_.parts = {std::move(q)};
    }

    // A GGUF file's blocks as stored: [out, bytes per row] of `type`, rows of `in` weights,
    // dequantised into `dtype` band by band as the products need them.
    void hold_blocks(at::Tensor blocks, gguf::TensorType type, std::int64_t in, at::ScalarType dtype) {
        dtype_ = dtype;
        q_.parts = {QuantisedRows{std::move(blocks), {}, type, in}};
    }

    bool defined() const { return dense_.defined() || quantised(); }
    bool quantised() const { return !q_.parts.empty(); }
    Layout layout() const { return layout_; }

    // The size along d of the matrix as stored ([out, in], or [in, out] for conv1d).
    std::int64_t size(int d) const {
        if (!quantised()) return dense_.size(d);
        return (layout_ == conv1d ? 1 - d : d) == 0 ? q_.out() : q_.parts.front().in;
    }

    // The values the products use, as one tensor in the stored layout: the dense weight itself, or
    // the quantised one dequantised (a copy; what a save writes).
    at::Tensor values() const {
        if (!quantised()) return dense_;
        std::vector<at::Tensor> rows;
        for (const auto& p : q_.parts) rows.push_back(p.dequantised(0, p.out(), dtype_));
        auto w = rows.size() == 1 ? rows.front() : at::cat(rows, 0);
        return layout_ == conv1d ? w.t().contiguous() : w;
    }
    // The bytes this weight holds.
    std::uint64_t bytes() const {
        if (!quantised()) return dense_.defined() ? dense_.nbytes() : 0;
        std::uint64_t n = 0;
        for (const auto& p : q_.parts) n += p.data.nbytes() + (p.scale.defined() ? p.scale.nbytes() : 0);
        return n;
    }
    // What a weight of this shape would hold, `element` bytes per dense value.
    std::uint64_t bytes(std::int64_t rows, std::int64_t cols, std::uint64_t element, Weights how) const {
        const auto out = layout_ == conv1d ? cols : rows;
        if (how == Weights::dense) return std::uint64_t(rows * cols) * element;
        return std::uint64_t(rows * cols) + 4 * std::uint64_t(out);
    }

    // Output channels [start, start + n), within one of the parts stacked: a view.
    Weight narrow(std::int64_t start, std::int64_t n) const {
        require(layout_ == linear, "a Conv1D weight is not split by output rows");
        Weight w = *this;
        if (!quantised()) {
            w.dense_ = dense_.narrow(0, start, n);
            return w;
        }
        for (const auto& p : q_.parts) {
            if (start < p.out()) {
                require(start + n <= p.out(), "a view of stacked weights must lie within one of them");
                w.q_.parts = {p.narrow(start, n)};
                return w;
            }
            start -= p.out();
        }
        fail("rows past the weight's ", q_.out());
    }
    // Several weights' output channels stacked, in order (Llama's q|k|v): one tensor where they are
    // held alike, else the parts side by side (a GGUF file may store q and k in Q4_K, v in Q6_K).
    static Weight cat(std::initializer_list<Weight> parts) {
        Weight w = *parts.begin();
        require(std::ranges::all_of(
                    parts, [&](const Weight& p) { return p.layout_ == linear && p.quantised() == w.quantised(); }),
                "stacked weights must be held alike");
        if (!w.quantised()) {
            std::vector<at::Tensor> a;
            for (const auto& p : parts) a.push_back(p.dense_);
            w.dense_ = at::cat(a, 0);
            return w;
        }
        w.q_.parts.clear();
        for (const auto& p : parts)
            for (const auto& rows : p.q_.parts) {
                auto* last = w.q_.parts.empty() ? nullptr : &w.q_.parts.back();
                if (!last || last->type != rows.type || last->in != rows.in) {
                    w.q_.parts.push_back(rows);
                    continue;
                }
                last->data = at::cat({last->data, rows.data}, 0);
                if (rows.scale.defined()) last->scale = at::cat({last->scale, rows.scale}, 0);
            }
        return w;
    }

    // y = x·Wᵀ + b over x's last axis.
    at::Tensor operator()(const at::Tensor& x, const at::Tensor& b = {}) const {
        if (!quantised() && layout_ == linear) return at::linear(x, dense_, b);
        auto sizes = x.sizes().vec();
        sizes.back() = size(layout_ == conv1d ? 1 : 0);
        const auto rows = x.reshape({-1, x.size(-1)});
        at::Tensor y;
        if (!quantised())
            y = b.defined() ? at::addmm(b, rows, dense_) : at::mm(rows, dense_);
        else {
            y = rows.requires_grad() && at::GradMode::is_enabled() ? detail::QuantisedLinear::apply(rows, q_)
                                                                   : q_.product(rows);
            if (b.defined()) y = y + b;
        }
        return y.view(sizes);
    }

    // ∂(Σ dy·(x·Wᵀ + b))/∂x = dy·W over dy's last axis.
    at::Tensor input_grad(const at::Tensor& dy) const {
        auto sizes = dy.sizes().vec();
        sizes.back() = size(layout_ == conv1d ? 0 : 1);
        const auto rows = dy.reshape({-1, dy.size(-1)});
        if (quantised()) return q_.input_grad(rows).view(sizes);
        return at::mm(rows, layout_ == conv1d ? dense_.t() : dense_).view(sizes);
    }

private:
    Layout layout_ = linear;
    at::ScalarType dtype_ = at::kFloat;  // what the quantised values dequantise into
    at::Tensor dense_;                   // dense: the weight as stored
    QuantisedMatrix q_;                  // quantised: its output channels, in parts
};

// Whether a file's quantised blocks are kept as stored (GgufFile::blocks): on the CPU, where no 8-bit
// weights are asked for. The loader and the memory estimate both go by it.
inline bool keeps_file_blocks(const Placement& p) { return p.weights == Weights::dense && p.device.is_cpu(); }

// A slot of a family's tensor list filled as the placement holds weights: a plain tensor as is, a
// Weight dense or 8-bit.
inline void fill(at::Tensor& slot, at::Tensor t, const Placement&) { slot = std::move(t); }
inline void fill(Weight& slot, at::Tensor t, const Placement& p) { slot.hold(std::move(t), p.weights); }

inline const at::Tensor& values(const at::Tensor& t) { return t; }
inline at::Tensor values(const Weight& w) { return w.values(); }

}  // namespace inputrep
