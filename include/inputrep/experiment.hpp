#pragma once
// Experiment<Model, Slice, Metric, Optimizer, Mask, Space, Decoder>: recover a prompt from the
// output of a model slice by optimising an input until the slice's output matches, then decode it.
//
//   target a  = Space::target(ids);          O(a) = Mask(Slice(a))
//   shifted a′ = a + σ·N(0, 1);              the yard-stick m(O(a′), O(a))
//   a_g ← init;  repeat N: a_g ← step(a_g, ∇ m(O(a_g), O(a)))
//   decode a_g through the Decoder; exact when top-1 equals the prompt.
//
// Every prompt and restart of a run advances in one batch tensor. The loop body is fully typed: the
// policies are members, so nothing is virtual or erased inside a step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include <inputrep/model/model.hpp>
#include <inputrep/policy/decode.hpp>
#include <inputrep/policy/mask.hpp>
#include <inputrep/policy/metric.hpp>
#include <inputrep/policy/optimizer.hpp>
#include <inputrep/policy/slice.hpp>
#include <inputrep/policy/space.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

namespace inputrep {

struct RunOptions {
    int steps = 0;                        // 0: the family's default
    std::optional<double> lr_start, lr_end;  // unset: the optimizer type's rates, else the family's
    std::optional<double> init_scale;     // σ of the N(0, σ) initial input; unset: the family's
    std::uint64_t seed = 0;
    int restarts = 1;                     // random restarts per prompt, all in one batch; the best is kept
    int top_k = 5;
    double shift_sigma = 0.05;            // a′ = a + shift_sigma·N(0, 1)
    std::function<void(int step, int steps)> progress;  // called every progress_every steps
    int progress_every = 100;
    bool early_stop = false;              // stop once every prompt is closer than its shifted input
    int early_stop_every = 10;            // how often to check (each check synchronises the device)
};

class Result {
public:
    struct Fields {
        std::vector<std::int64_t> target, ids;
        std::vector<std::vector<std::int64_t>> top_k_ids;  // [k][position]
        std::vector<std::string> top_k_text;               // [k], when a tokenizer was attached
        double distance = 0, shifted_distance = 0;
        xt::xtensor<float, 1> trace;                       // distance before each step, then the final one
        std::vector<double> restart_distances;
        int restart = 0;
        int batch = 1;
        double steps_per_second = 0;                       // batch steps per second of the loop alone
    };
    explicit Result(Fields f) : f_(std::move(f)) {}

    const std::vector<std::int64_t>& target() const { return f_.target; }
    const std::vector<std::int64_t>& ids() const { return f_.ids; }
    const std::vector<std::vector<std::int64_t>>& top_k_ids() const { return f_.top_k_ids; }
    // The first k decoded lines; line i holds every position's (i+1)-th most likely token.
    std::vector<std::string> top_k(std::size_t k) const {
        require(!f_.top_k_text.empty(), "no tokenizer was attached to the experiment, so there is no text (use top_k_ids)");
        return {f_.top_k_text.begin(), f_.top_k_text.begin() + std::min(k, f_.top_k_text.size())};
    }
    std::string decoded() const { return top_k(1).front(); }
    double distance() const { return f_.distance; }
    double shifted_distance() const { return f_.shifted_distance; }
    bool succeeded_in_distance() const { return f_.distance < f_.shifted_distance; }
    bool exact() const { return f_.ids == f_.target; }
    std::size_t exact_tokens() const {
        std::size_t n = 0;
        for (std::size_t i = 0; i < f_.ids.size(); ++i) n += f_.ids[i] == f_.target[i];
        return n;
    }
    const xt::xtensor<float, 1>& trace() const { return f_.trace; }
    const std::vector<double>& restart_distances() const { return f_.restart_distances; }
    int restart() const { return f_.restart; }
    int batch() const { return f_.batch; }
    double steps_per_second() const { return f_.steps_per_second; }

private:
    Fields f_;
};

// Compile-time checks whose failing instantiation shows the numbers, e.g. slice_fits_model<13, 12>.
template <int SliceEnd, int ModelDepth>
struct slice_fits_model {
    static_assert(ModelDepth == dynamic_depth || SliceEnd == dynamic_depth || SliceEnd <= ModelDepth,
                  "the slice ends past the model's last block: Blocks<B, E> needs E <= the depth N of Layers<Family, N>");
    static constexpr bool value = true;
};

template <class Model, Slice S = Blocks<0, 1>, Metric Mt = L1, Optimizer Op = Adam<>, OutputMask Mk = AllTokens,
          class Sp = EmbeddingSpace, Decoder De = PseudoInverse>
class Experiment {
    using Family = family_of_t<Model>;
    static_assert(LanguageModel<Family>, "Experiment<Model, ...>: Model must be a model family (GPT2, ...) or Layers<Family, N>");
    static_assert(slice_fits_model<static_end_of<S>(), static_depth_of<Model>()>::value);
    static_assert(!is_sequential<Op> || !(std::derived_from<Mk, TokenRange> || std::same_as<Mk, LastToken>),
                  "Sequential<...> compares one output position per phase: use AllTokens or a Neurons<B, E> mask");

public:
    explicit Experiment(Model model, S slice = {}, Mt metric = {}, Op optimizer = {}, Mk mask = {}, Sp space = {}, De decoder = {})
        : model_(std::move(model)), slice_(slice), metric_(metric), optimizer_(optimizer), mask_(mask), space_(space),
          decoder_(decoder) {}

    // Attach a tokenizer so results carry decoded text.
    Experiment& with_tokenizer(Tokenizer tokenizer) {
        tokenizer_ = std::move(tokenizer);
        return *this;
    }

    const Model& model() const { return model_; }

    Result run(std::span<const std::int64_t> prompt, const RunOptions& options = {}) const {
        return run_batch({{prompt.begin(), prompt.end()}}, options).front();
    }

    // Several prompts in one go; prompts of equal length share one batch tensor.
    std::vector<Result> run(const std::vector<std::vector<std::int64_t>>& prompts, const RunOptions& options = {}) const {
        std::map<std::size_t, std::vector<std::size_t>> by_length;
        for (std::size_t i = 0; i < prompts.size(); ++i) by_length[prompts[i].size()].push_back(i);
        std::vector<std::optional<Result>> out(prompts.size());
        for (auto& [_, members] : by_length) {
            std::vector<std::vector<std::int64_t>> group;
            for (auto i : members) group.push_back(prompts[i]);
            auto results = run_batch(group, options);
            for (std::size_t j = 0; j < members.size(); ++j) out[members[j]] = std::move(results[j]);
        }
        std::vector<Result> results;
        for (auto& r : out) results.push_back(std::move(*r));
        return results;
    }

    // RunOptions with the family's defaults filled in.
    struct Resolved {
        int steps;
        double init_scale;
        Schedule rates;
    };

    // One optimisation in progress: prompts of equal length and their restarts as one batch. run()
    // drives it to the end; a caller can also step it by hand (benchmarks, custom stopping).
    class Session {
    public:
        int steps() const { return cfg_.steps; }
        int steps_done() const { return done_; }
        bool done() const { return done_ == cfg_.steps; }

        // x ← step(x, ∇ Σ_batch m(O(x), O(a))); the distances before the step go to the trace.
        void step() {
            require(!done(), "the session has run all its ", cfg_.steps, " steps");
            if (done_ == 0) started_ = std::chrono::steady_clock::now();
            const Experiment& e = *exp_;
            const int p = position();
            // What is compared: the mask's part of the output, or of output position p alone.
            auto compared = [&](const at::Tensor& y) { return p < 0 ? e.mask_(y) : e.mask_(y.narrow(1, p, 1)); };
            const at::Tensor target = p < 0 ? target_out_ : compared(target_full_);
            at::Tensor distance, gradient;
            if constexpr (analytic) {
                // The model's own input gradient through the blocks: no graph is recorded.
                c10::InferenceMode no_autograd;  // lighter than NoGradGuard: no version counters or autograd keys
                const auto r = e.slice_.range();
                at::Tensor y = e.space_.slice_input(e.model_, x_);
                for (int i = r.begin; i < r.end; ++i) y = e.model_.block(i, y, ctx_, tapes_[i - r.begin]);
                auto [d, dm] = e.metric_.value_and_grad(compared(y), target);
                at::Tensor dy = dm;
                if (!dm.sizes().equals(y.sizes())) {
                    dy = at::zeros_like(y);
                    compared(dy).copy_(dm);  // masks are views, so this scatters into the compared part
                }
                for (int i = r.end - 1; i >= r.begin; --i) dy = e.model_.block_input_grad(i, dy, ctx_, tapes_[i - r.begin]);
                distance = d, gradient = e.space_.input_grad(e.model_, dy);
            } else {
                at::Tensor out = compared(slice_output(x_));
                auto [d, dm] = e.metric_.value_and_grad(out.detach(), target);
                gradient = torch::autograd::grad({out}, {x_}, {dm})[0];
                distance = d;
            }
            at::NoGradGuard no_grad;
            trace_.select(0, done_).copy_(distance);
            if constexpr (is_sequential<Op>) {
                const int phase = (cfg_.steps + length_ - 1) / length_, first = p * phase;
                state_->step_at(x_, gradient, cfg_.rates.at(done_ - first, std::min(phase, cfg_.steps - first)), p);
            } else {
                state_->step(x_, gradient, cfg_.rates.at(done_, cfg_.steps));
            }
            ++done_;
        }

        // Whether every prompt is already closer to its target than the shifted input (some restart).
        bool closer_than_shifted() const {
            if (done_ == 0) return false;
            auto last = trace_.select(0, done_ - 1).to(at::kCPU, at::kDouble).view({-1, restarts_}).amin(1);
            return (last < shifted_distance_).all().item<bool>();
        }

        // Final distances, the best restart of each prompt, decoded.
        std::vector<Result> finish() {
            const Experiment& e = *exp_;
            if (done_ == 0) started_ = std::chrono::steady_clock::now();
            {
                at::NoGradGuard no_grad;
                trace_.select(0, done_).copy_(e.metric_(e.mask_(slice_output(x_)), target_out_));
            }
            const at::Tensor host_trace = trace_.narrow(0, 0, done_ + 1).to(at::kCPU).contiguous();  // synchronises the device
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
            if (!at::isfinite(host_trace).all().item<bool>()) {
                at::Tensor bad = at::logical_not(at::isfinite(host_trace)).any(1).nonzero();
                fail("the optimisation diverged: the distance became NaN or infinite at step ", bad[0].item<std::int64_t>(),
                     " (lower the learning rate or the initial scale)");
            }
            const auto P = static_cast<std::int64_t>(prompts_.size()), R = restarts_, T = length_;
            const at::Tensor per_restart = host_trace.select(0, done_).view({P, R}).to(at::kDouble);
            const at::Tensor best = per_restart.argmin(1);
            at::Tensor chosen;
            {
                at::NoGradGuard no_grad;
                chosen = x_.detach().index_select(0, (at::arange(P, at::kLong) * R + best).to(x_.device()));
            }
            const at::Tensor topk = std::get<1>(at::topk(e.space_.scores(e.model_, chosen, e.decoder_state()), top_k_, -1)).to(at::kCPU);

            std::vector<Result> results;
            for (std::int64_t p = 0; p < P; ++p) {
                Result::Fields f;
                f.target = prompts_[p];
                const auto b = best[p].item<std::int64_t>();
                for (std::int64_t k = 0; k < top_k_; ++k) {
                    at::Tensor line = topk[p].select(1, k).contiguous();
                    f.top_k_ids.emplace_back(line.data_ptr<std::int64_t>(), line.data_ptr<std::int64_t>() + T);
                    if (e.tokenizer_) f.top_k_text.push_back(e.tokenizer_->decode(f.top_k_ids.back()));
                }
                f.ids = f.top_k_ids.front();
                f.distance = per_restart[p][b].item<double>();
                f.shifted_distance = shifted_distance_[p].item<double>();
                at::Tensor column = host_trace.select(1, p * R + b).contiguous();
                f.trace = xt::adapt(column.data_ptr<float>(), std::array<std::size_t, 1>{std::size_t(done_ + 1)});
                at::Tensor row = per_restart[p].contiguous();
                f.restart_distances.assign(row.data_ptr<double>(), row.data_ptr<double>() + R);
                f.restart = static_cast<int>(b);
                f.batch = static_cast<int>(P * R);
                f.steps_per_second = done_ > 0 ? done_ / seconds : 0.0;
                results.emplace_back(std::move(f));
            }
            return results;
        }

    private:
        friend class Experiment;
        using Context = typename Family::Context;
        static constexpr bool analytic = is_block_chain<S> && InputGradientModel<Family>;
        using Tapes = std::conditional_t<analytic, std::vector<tape_of_t<Family>>, std::monostate>;
        using OptimizerState = decltype(std::declval<const Op&>().start(std::declval<const at::Tensor&>()));

        Session(const Experiment& e, std::vector<std::vector<std::int64_t>> prompts, const RunOptions& o)
            : exp_(&e), prompts_(std::move(prompts)), cfg_(e.resolve(o)), restarts_(o.restarts),
              length_(static_cast<std::int64_t>(prompts_.front().size())), top_k_(o.top_k),
              ctx_(e.model_.context(length_, e.slice_.causal(), e.slice_.variant())) {
            const auto P = static_cast<std::int64_t>(prompts_.size()), R = restarts_;
            const at::Device device = e.model_.placement().device;
            std::vector<std::int64_t> flat;
            for (auto& p : prompts_) flat.insert(flat.end(), p.begin(), p.end());
            const at::Tensor ids = at::tensor(flat, at::kLong).view({P, length_}).to(device);
            at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
            at::Tensor target_in;
            {
                at::NoGradGuard no_grad;
                target_in = e.space_.target(e.model_, ids);
                target_full_ = slice_output(target_in);
                target_out_ = e.mask_(target_full_);
                at::Tensor noise = at::empty(target_in.sizes(), at::kFloat).normal_(0.0, 1.0, gen).to(device, target_in.scalar_type());
                shifted_distance_ = e.metric_(e.mask_(slice_output(target_in + o.shift_sigma * noise)), target_out_).to(at::kDouble).cpu();
                if (R > 1) target_out_ = target_out_.repeat_interleave(R, 0), target_full_ = target_full_.repeat_interleave(R, 0);
            }
            x_ = e.space_.initial(e.model_, R > 1 ? target_in.repeat_interleave(R, 0) : target_in, cfg_.init_scale, gen);
            if constexpr (analytic) tapes_.resize(e.slice_.range().end - e.slice_.range().begin);
            else x_.requires_grad_(true);
            state_.emplace(e.optimizer_.start(x_));
            trace_ = at::empty({cfg_.steps + 1, P * R}, at::TensorOptions().dtype(at::kFloat).device(device));
        }

        at::Tensor slice_output(const at::Tensor& x) const {
            const Experiment& e = *exp_;
            return apply_slice(e.slice_, e.model_, e.space_.slice_input(e.model_, x), ctx_);
        }

        // The position the current step optimises (Sequential), or -1 for all.
        int position() const {
            if constexpr (is_sequential<Op>) {
                const int phase = (cfg_.steps + length_ - 1) / length_;
                return std::min<int>(done_ / phase, length_ - 1);
            } else {
                return -1;
            }
        }

        const Experiment* exp_;
        std::vector<std::vector<std::int64_t>> prompts_;
        Resolved cfg_;
        std::int64_t restarts_, length_, top_k_;
        Context ctx_;
        at::Tensor target_full_, target_out_, shifted_distance_, x_, trace_;
        std::optional<OptimizerState> state_;
        Tapes tapes_;
        int done_ = 0;
        std::chrono::steady_clock::time_point started_;
    };

    // Validates the prompts (equal length) and options, computes targets and the shifted yard-stick.
    Session start(const std::vector<std::vector<std::int64_t>>& prompts, const RunOptions& options = {}) const {
        validate(prompts);
        return Session(*this, prompts, options);
    }

private:

    Resolved resolve(const RunOptions& o) const {
        const InversionDefaults d = Family::defaults();
        const bool adam = kind_of(optimizer_) == OptimizerKind::adam;
        Schedule rates = optimizer_.rates().value_or(adam ? d.adam : d.gradient_descent);
        if (o.lr_start) rates.start = *o.lr_start;
        if (o.lr_end) rates.end = *o.lr_end;
        Resolved r{o.steps > 0 ? o.steps : d.steps, o.init_scale.value_or(d.init_scale), rates};
        require(o.steps >= 0, "steps must be positive");
        require(r.init_scale > 0, "the initial input's scale must be positive");
        require(o.restarts >= 1, "restarts must be at least 1");
        require(o.top_k >= 1, "top_k must be at least 1");
        return r;
    }

    void validate(const std::vector<std::vector<std::int64_t>>& prompts) const {
        require(!prompts.empty(), "no prompt given");
        const auto r = slice_.range();
        require(r.end <= model_.depth(), Family::family, ": the slice ends at block ", r.end, " but the model has only ",
                model_.depth(), " blocks");
        const auto vocab = model_.token_embedding().size(0);
        for (const auto& p : prompts) {
            require(!p.empty(), "empty prompt: there is nothing to invert");
            require(static_cast<std::int64_t>(p.size()) <= model_.context_length(), "prompt of ", p.size(),
                    " tokens is longer than the model's context of ", model_.context_length(), " positions");
            for (auto id : p) require(id >= 0 && id < vocab, "token id ", id, " is outside the vocabulary of ", vocab);
            require(p.size() == prompts.front().size(), "prompts of one batch must have equal length");
        }
        mask_.check(static_cast<std::int64_t>(prompts.front().size()));
        if constexpr (is_sequential<Op>) {
            try {
                mask_.check(1);
            } catch (const Error&) {
                fail("Sequential optimisation compares one output position at a time: use a mask without a token range");
            }
        }
    }

    const typename De::State& decoder_state() const {
        std::call_once(decoder_cache_->once, [&] { decoder_cache_->state = decoder_.prepare(model_.token_embedding()); });
        return decoder_cache_->state;
    }

    std::vector<Result> run_batch(const std::vector<std::vector<std::int64_t>>& prompts, const RunOptions& o) const {
        Session session = start(prompts, o);
        while (!session.done()) {
            session.step();
            const int n = session.steps_done();
            if (o.progress && n % o.progress_every == 0) o.progress(n, session.steps());
            if (o.early_stop && n % o.early_stop_every == 0 && session.closer_than_shifted()) break;
        }
        return session.finish();
    }

    struct DecoderCache {
        std::once_flag once;
        typename De::State state;
    };

    Model model_;
    [[no_unique_address]] S slice_;
    [[no_unique_address]] Mt metric_;
    [[no_unique_address]] Op optimizer_;
    [[no_unique_address]] Mk mask_;
    [[no_unique_address]] Sp space_;
    [[no_unique_address]] De decoder_;
    std::optional<Tokenizer> tokenizer_;
    std::shared_ptr<DecoderCache> decoder_cache_ = std::make_shared<DecoderCache>();
};

}  // namespace inputrep
