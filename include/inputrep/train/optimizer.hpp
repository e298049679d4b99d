#pragma once
// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW computes it, over the tensors a model's
// forward pass computes with, and the learning-rate schedule.
//   θ ← θ·(1 − η·λ)                       decoupled weight decay, matrices only (not norms, biases)
//   m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²
//   θ ← θ − η·(m / (1 − β₁ᵗ)) / (sqrt(v / (1 − β₂ᵗ)) + ε)
//   η(s) = η·(s+1)/warmup during warmup, then cosine or linear from η down to η·min_ratio
// Clipping scales every gradient by c/‖g‖ when the global norm ‖g‖ exceeds c, as clip_grad_norm_.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>

namespace inputrep::train {

enum class Decay { cosine, linear, constant };

inline Decay parse_decay(std::string_view name) {
    if (name == "cosine") return Decay::cosine;
    if (name == "linear") return Decay::linear;
    if (name == "constant") return Decay::constant;
    fail("unknown learning-rate decay \"", name, "\" (expected cosine, linear or constant)");
}
inline const char* decay_name(Decay d) {
    return d == Decay::cosine ? "cosine" : d == Decay::linear ? "linear" : "constant";
}

struct Schedule {
    double lr = 1e-3;
    std::int64_t warmup = 0, steps = 1;
    Decay decay = Decay::cosine;
    double min_ratio = 0.1;

    // The rate of step s (0-based).
    double operator()(std::int64_t s) const {
        if (s < warmup) return lr * double(s + 1) / double(warmup);
        if (decay == Decay::constant || steps <= warmup) return lr;
        const double progress = std::min(1.0, double(s - warmup) / double(std::max<std::int64_t>(1, steps - warmup)));
        const double shape = decay == Decay::cosine ? 0.5 * (1 + std::cos(std::numbers::pi * progress)) : 1 - progress;
        return lr * (min_ratio + (1 - min_ratio) * shape);
    }
};

struct AdamWOptions {
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
public:
    AdamW(std::vector<at::Tensor> parameters, AdamWOptions options)
        : params_(std::move(parameters)), options_(options) {
        for (auto& p : params_) {
            require(p.is_leaf() && p.requires_grad(), "AdamW: every parameter must be a leaf that requires grad");
            m_.push_back(at::zeros_like(p));
            v_.push_back(at::zeros_like(p));
        }
    }

    void zero_grad() {
        for (auto& p : params_) p.mutable_grad().reset();
    }

    // The global gradient norm before clipping (NaN when any gradient is).
    double clip(double max_norm) {
        at::NoGradGuard no_grad;
        std::vector<at::Tensor> norms;
        for (auto& p : params_)
            if (p.grad().defined()) norms.push_back(p.grad().to(at::kFloat).norm());
        if (norms.empty()) return 0;
        const double total = at::stack(norms).norm().item<double>();
        if (max_norm > 0 && total > max_norm)
            for (auto& p : params_)
                if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (total + 1e-6));
        return total;
    }

    void step(double lr) {
        at::NoGradGuard no_grad;
        ++t_;
        const double bc1 = 1 - std::pow(options_.beta1, double(t_)), bc2 = 1 - std::pow(options_.beta2, double(t_));
        for (std::size_t i = 0; i < params_.size(); ++i) {
            auto& p = params_[i];
            const auto& g = p.grad();
            if (!g.defined()) continue;
            if (p.dim() >= 2 && options_.weight_decay > 0) p.mul_(1 - lr * options_.weight_decay);
            m_[i].mul_(options_.beta1).add_(g, 1 - options_.beta1);
            v_[i].mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
            p.addcdiv_(m_[i], (v_[i].sqrt() / std::sqrt(bc2)).add_(options_.eps), -lr / bc1);
        }
    }

    // The moments by parameter index, for the trainer-state file.
    std::vector<std::pair<std::string, at::Tensor>> state() const {
        std::vector<std::pair<std::string, at::Tensor>> out;
        for (std::size_t i = 0; i < params_.size(); ++i)
            out.emplace_back("exp_avg." + std::to_string(i), m_[i]),
                out.emplace_back("exp_avg_sq." + std::to_string(i), v_[i]);
        return out;
    }
    template <class Load>  // load(name, shape) -> at::Tensor
    void restore(std::int64_t t, Load&& load) {
        t_ = t;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            m_[i].copy_(load("exp_avg." + std::to_string(i), m_[i].sizes()));
            v_[i].copy_(load("exp_avg_sq." + std::to_string(i), v_[i].sizes()));
        }
    }
    std::int64_t steps_taken() const { return t_; }
    const std::vector<at::Tensor>& parameters() const { return params_; }

private:
    std::vector<at::Tensor> params_, m_, v_;
    AdamWOptions options_;
    std::int64_t t_ = 0;
};

}  // namespace inputrep::train
