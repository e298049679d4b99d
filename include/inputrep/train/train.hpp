#pragma once
// Training a model family on text with libtorch autograd: next-token cross-entropy
//   L = −(1/N) Σ_t log softmax(unembed(blocks(embed(x)))_t)[x_{t+1}]
// minimised by AdamW (train/optimizer.hpp) over seeded batches of packed contexts. Checkpoints are
// Hugging Face folders every loader takes, plus the trainer state that resumes a run bitwise:
//   OUT/config.json, model.safetensors        the model
//   OUT/tokenizer.model (or the reused tokenizer's files)
//   OUT/trainer_state.json, optimizer.safetensors   step, run options, AdamW moments
//   OUT/log.jsonl, report.html                the loss curves up to that step
// A checkpoint is written whole into a sibling folder, then swapped in by renames, so OUT is
// always a complete checkpoint (or absent, between two renames, with the previous one beside it).
//   auto r = train::train<GPT2>(config, {"corpus.txt"}, {.steps = 1000, .out = "m"});
#include <unistd.h>

#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <inputrep/core/file.hpp>
#include <inputrep/core/hash.hpp>
#include <inputrep/core/json.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/io/save_safetensors.hpp>
#include <inputrep/model/load.hpp>
#include <inputrep/report/page.hpp>
#include <inputrep/report/plot.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>
#include <inputrep/train/corpus.hpp>
#include <inputrep/train/optimizer.hpp>
#include <inputrep/train/state.hpp>

namespace inputrep::train {

namespace fs = std::filesystem;

struct LogEntry {
    std::int64_t step = 0;                   // steps done
    double loss = 0, lr = 0, grad_norm = 0;  // the step's mean training loss (nats per token)
    double tokens_per_second = 0, eta_seconds = 0;
    std::optional<double> held_out;  // held-out cross-entropy, on eval steps
};

struct TrainOptions {
    std::optional<fs::path>
        tokenizer;  // reuse this folder's tokenizer; else train a SentencePiece BPE of config's vocab_size
    std::int64_t steps = 1000, batch = 16, context = 64, accumulation = 1;
    double lr = 1e-3, min_lr_ratio = 0.1, clip = 1.0;
    std::int64_t warmup = 100;
    Decay decay = Decay::cosine;
    AdamWOptions adamw;
    std::uint64_t seed = 0;
    double held_out = 0.05;             // fraction of documents held out (by content hash)
    bool padded = false;                // one document per context, padded, instead of packed
    std::int64_t checkpoint_every = 0;  // 0: only at the end
    std::int64_t eval_every = 100, eval_contexts = 64;
    std::int64_t until = 0;  // stop after this step with a checkpoint (0: run to `steps`); resume later
    fs::path out;
    bool resume = false;
    at::Device device = at::kCPU;  // parameters stay f32; CUDA computes under bf16 autocast
    bool autocast = true;
    bool ignore_memory = false;  // build the model even when training it needs more than MemAvailable
    std::function<void(const LogEntry&)> progress;
    std::function<void(std::string_view)> warn;  // what a run tolerates but says (default: stderr)
};

struct TrainResult {
    std::vector<LogEntry> log;
    double held_out = 0;  // final held-out cross-entropy over eval_contexts
    double tokens_per_second = 0;
};

// What a training run is, as compared on --resume: everything that shapes the loss curve, the
// corpus's and the tokenizer's bytes included (as hashes).
inline Json run_json(std::string_view family, const Json& config, const TrainOptions& o, std::int64_t bos,
                     const std::string& corpus, const std::string& tokenizer) {
    return {{"family", family},
            {"config", config},
            {"steps", o.steps},
            {"batch", o.batch},
            {"context", o.context},
            {"accumulation", o.accumulation},
            {"lr", o.lr},
            {"min_lr_ratio", o.min_lr_ratio},
            {"clip", o.clip},
            {"warmup", o.warmup},
            {"decay", decay_name(o.decay)},
            {"beta1", o.adamw.beta1},
            {"beta2", o.adamw.beta2},
            {"eps", o.adamw.eps},
            {"weight_decay", o.adamw.weight_decay},
            {"seed", o.seed},
            {"held_out", o.held_out},
            {"padded", o.padded},
            {"bos", bos},
            {"corpus", corpus},
            {"tokenizer", tokenizer}};
}

// The tensors a model's forward pass computes with, each once: the family's parameters() when it
// has one, else its named tensors, a view (Llama's q/k/v into the stacked qkv) standing for its base.
template <class M>
std::vector<at::Tensor> parameters_of(const M& m) {
    std::vector<at::Tensor> out;
    auto add = [&](const at::Tensor& t) {
        at::Tensor p = t.is_view() ? at::Tensor(t._base()) : t;
        for (auto& q : out)
            if (q.unsafeGetTensorImpl() == p.unsafeGetTensorImpl()) return;
        out.push_back(p);
    };
    if constexpr (requires { m.parameters(); }) {
        for (auto&& e : m.parameters())
            if constexpr (requires { e.second; })
                add(e.second);
            else
                add(e);
    } else {
        for (auto& [name, t] : m.named_tensors()) add(t);
    }
    return out;
}

// Logits [B, T, V] of ids [B, T]: the whole model, causal.
template <class M>
at::Tensor logits_of(const M& m, const at::Tensor& ids) {
    auto x = m.embed(ids);
    const auto ctx = m.context(ids.size(1), true);
    for (int i = 0; i < m.depth(); ++i) x = m.block(i, x, ctx);
    return m.unembed(x);
}

// Σ of −log p(target) over non-ignored targets, and their count.
template <class M>
std::pair<at::Tensor, std::int64_t> summed_loss(const M& m, const at::Tensor& rows) {
    const auto T = rows.size(1) - 1;
    auto inputs = rows.narrow(1, 0, T).clamp_min(0), targets = rows.narrow(1, 1, T);
    auto logits = logits_of(m, inputs);
    if (logits.scalar_type() != at::kDouble)
        logits = logits.to(at::kFloat);  // bf16 logits under autocast: the loss in f32
    auto loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape(-1), {},
                                       at::Reduction::Sum, ignore_id);
    return {loss, (targets != ignore_id).sum().item<std::int64_t>()};
}

// Mean held-out cross-entropy (nats per token) over the first `max_rows` rows (0: all).
template <class M>
double cross_entropy(const M& m, const at::Tensor& rows, std::int64_t batch, std::int64_t max_rows = 0) {
    at::NoGradGuard no_grad;
    const auto n = max_rows > 0 ? std::min(max_rows, rows.size(0)) : rows.size(0);
    double total = 0;
    std::int64_t count = 0;
    for (std::int64_t s = 0; s < n; s += batch) {
        auto [loss, k] = summed_loss(m, rows.narrow(0, s, std::min(batch, n - s)).to(m.placement().device));
        total += loss.template item<double>(), count += k;
    }
    return total / double(std::max<std::int64_t>(count, 1));
}

// A bigram model estimated on the training rows, interpolated with the add-one unigram:
//   p(b | a) = λ·c(a, b)/c(a) + (1 − λ)·(c(b) + 1)/(N + V)
// λ is the best of a grid on the held-out rows themselves: an optimistic bigram, the bar to beat.
inline double bigram_cross_entropy(const at::Tensor& train_rows, const at::Tensor& held_rows, std::int64_t V) {
    std::unordered_map<std::int64_t, double> pair;
    std::vector<double> first(V, 0), unigram(V, 0);
    double N = 0;
    auto each_pair = [](const at::Tensor& rows, auto&& f) {
        auto r = rows.contiguous();
        const auto* p = r.data_ptr<std::int64_t>();
        const auto n = r.size(0), T1 = r.size(1);
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t t = 0; t + 1 < T1; ++t)
                if (p[i * T1 + t] >= 0 && p[i * T1 + t + 1] >= 0) f(p[i * T1 + t], p[i * T1 + t + 1]);
    };
    each_pair(train_rows,
              [&](std::int64_t a, std::int64_t b) { pair[a * V + b] += 1, first[a] += 1, unigram[b] += 1, N += 1; });
    double best = std::numeric_limits<double>::infinity();
    for (double lambda : {0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99}) {
        double total = 0, count = 0;
        each_pair(held_rows, [&](std::int64_t a, std::int64_t b) {
            const double uni = (unigram[b] + 1) / (N + double(V));
            const auto it = pair.find(a * V + b);
            const double bi = first[a] > 0 ? (it == pair.end() ? 0.0 : it->second) / first[a] : uni;
            total -= std::log(lambda * bi + (1 - lambda) * uni), count += 1;
        });
        best = std::min(best, total / std::max(count, 1.0));
    }
    return best;
}

namespace detail {

template <class F>
void fit_config(typename F::Config& c, std::int64_t vocab, std::int64_t context) {
    c.vocab_size = vocab;
    if constexpr (requires { c.n_positions; })
        c.n_positions = std::max(c.n_positions, context);
    else if constexpr (requires { c.max_position_embeddings; })
        c.max_position_embeddings = std::max(c.max_position_embeddings, context);
    else
        c.context_length = context;  // the mixer's token-mixing matrices are context × context
}

// The files of a tokenizer folder that make up the tokenizer, kept in memory and written into each checkpoint.
inline std::map<std::string, std::string> tokenizer_files(const fs::path& dir) {
    std::map<std::string, std::string> files;
    for (auto name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"})
        if (fs::is_regular_file(dir / name)) files[name] = read_file(dir / name, "tokenizer file");
    require(
        !files.empty(), dir.string(),
        ": no tokenizer files (tokenizer.model, tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe)");
    return files;
}

// The tokenizer's identity: its files' names and bytes.
inline std::string tokenizer_hash(const std::map<std::string, std::string>& files) {
    std::uint64_t h = fnv1a_basis;
    for (const auto& [name, bytes] : files) h = fnv1a(bytes, fnv1a(name + ":" + std::to_string(bytes.size()) + ":", h));
    return hex16(h);
}

// The log lines of a checkpoint up to its step. A line that does not read is left out and said:
// the log only draws the loss curve, and must not keep a run from resuming.
inline std::vector<LogEntry> read_log(const fs::path& path, std::int64_t step,
                                      const std::function<void(std::string_view)>& warn) {
    std::vector<LogEntry> log;
    std::error_code ec;
    if (!fs::exists(path, ec))
        return warn(path.string() + ": missing; the loss curve restarts at step " + std::to_string(step)), log;
    std::istringstream in(read_file(path, "training log"));
    std::size_t number = 0, skipped = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        if (line.empty()) continue;
        try {
            const auto where = path.string() + ":" + std::to_string(number);
            const Json j = parse_json(line, where);
            LogEntry e{json_field<std::int64_t>(j, "step", where),
                       json_field<double>(j, "loss", where),
                       json_field<double>(j, "lr", where),
                       json_field<double>(j, "grad_norm", where),
                       json_field<double>(j, "tokens_per_second", where),
                       0,
                       std::nullopt};
            if (j.contains("held_out")) e.held_out = json_field<double>(j, "held_out", where);
            if (e.step >= 1 && e.step <= step)
                log.push_back(e);
            else
                ++skipped;
        } catch (const Error& e) {
            if (skipped++ == 0) warn(std::string(e.what()) + "; such lines are left out of the loss curve");
        }
    }
    if (skipped > 0)
        warn(path.string() + ": " + std::to_string(skipped) + " of " + std::to_string(number) + " lines left out");
    return log;
}

// The sibling folder a checkpoint is built in; removed with everything in it unless committed.
class Staging {
public:
    explicit Staging(const fs::path& out) : out_(fs::absolute(out)) {
        path_ = out_.parent_path() / ("." + out_.filename().string() + ".tmp-" + std::to_string(::getpid()));
        std::error_code ec;
        fs::create_directories(out_.parent_path(), ec);
        if (!ec) fs::remove_all(path_, ec), fs::create_directory(path_, ec);
        require(!ec && fs::is_directory(path_), out_.string(), ": cannot write the output folder here (",
                ec ? ec.message() : "not a folder", ")");
    }
    ~Staging() { discard(); }
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;

    const fs::path& path() const { return path_; }
    void discard() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    // Swaps the staged folder in as OUT, then stages afresh for the next checkpoint.
    void commit() {
        const fs::path old = path_.string() + ".old";
        std::error_code ec;
        fs::remove_all(old, ec);
        if (fs::exists(out_)) fs::rename(out_, old, ec);
        require(!ec, out_.string(), ": cannot move the previous checkpoint aside (", ec.message(), ")");
        fs::rename(path_, out_, ec);
        require(!ec, out_.string(), ": cannot move the checkpoint into place (", ec.message(),
                "); the previous one is in ", old.string());
        fs::remove_all(old, ec);
        fs::create_directory(path_, ec);
        require(!ec, path_.string(), ": cannot stage the next checkpoint (", ec.message(), ")");
    }

private:
    fs::path out_, path_;
};

inline Json log_json(const LogEntry& e) {
    Json j{{"step", e.step},
           {"loss", e.loss},
           {"lr", e.lr},
           {"grad_norm", e.grad_norm},
           {"tokens_per_second", e.tokens_per_second}};
    if (e.held_out) j["held_out"] = *e.held_out;
    return j;
}

inline std::string report_html(std::string_view family, const Json& run, const std::vector<LogEntry>& log) {
    report::Series train{"training", {}, {}}, held{"held-out", {}, {}};
    for (auto& e : log) {
        train.x.push_back(double(e.step)), train.y.push_back(e.loss);
        if (e.held_out) held.x.push_back(double(e.step)), held.y.push_back(*e.held_out);
    }
    std::string body = report::svg({"cross-entropy per step", "step", "nats per token", {train, held}});
    body += "<h2>Run</h2><pre>" + report::escape(run.dump(2)) + "</pre>";
    return report::page(std::string(family) + " training", body);
}

}  // namespace detail

// Trains family F of shape `config` (its vocab_size is the tokenizer's; its context at least
// options.context) on the corpus files, writing checkpoints to options.out.
template <class F>
requires LanguageModel<F> TrainResult train(typename F::Config config, const std::vector<fs::path>& files,
                                            const TrainOptions& o) {
    require(o.steps > 0 && o.batch > 0 && o.context > 0 && o.accumulation > 0,
            "train: steps, batch, context and accumulation must be positive");
    require(o.lr > 0 && std::isfinite(o.lr), "train: the learning rate must be positive");
    require(!o.out.empty(), "train: no output folder");
    const fs::path out = fs::absolute(o.out);
    check_output_folder(out, "train: --out");
    const bool resuming = o.resume && fs::exists(out / "trainer_state.json");
    require(!o.resume || resuming, "train: --resume: ", out.string(), " holds no checkpoint (no trainer_state.json)");
    require(o.resume || !fs::exists(out) || fs::is_empty(out), "train: ", out.string(),
            " exists and is not empty; pass --resume to continue its run, or choose another folder");
    detail::Staging staging(out);  // fails here, before any work, when OUT cannot be written
    {
        // The memory check hidden and invert make, before anything is built: weights, their
        // gradients and AdamW's two moments, four copies in f32.
        auto sized = config;
        detail::fit_config<F>(sized, config.vocab_size, o.context);
        const Needs all{{0, sized.layers()}, true, true};
        try {
            check_memory(4 * F::estimated_bytes(sized, all, at::kFloat), o.ignore_memory);
        } catch (const Error& e) {
            fail("train: ", e.what(), " (--ignore-memory-check)");
        }
    }
    std::function<void(std::string_view)> warn = o.warn;
    if (!warn) warn = [](std::string_view w) { std::cerr << "train: warning: " << w << "\n"; };

    const Corpus corpus = read_corpus(files, o.held_out);
    // The tokenizer: the checkpoint's, a reused folder's, or SentencePiece BPE trained on the training documents.
    std::map<std::string, std::string> tokenizer_files;
    if (o.tokenizer)
        tokenizer_files = detail::tokenizer_files(*o.tokenizer);  // on resume too: compared with the checkpoint's
    else if (resuming)
        tokenizer_files = detail::tokenizer_files(out);
    else {
        require(!corpus.pretokenised,
                "train: a pre-tokenised corpus needs the tokenizer its ids came from (--tokenizer DIR)");
        train_sentencepiece(corpus.train, config.vocab_size, staging.path());
        tokenizer_files = detail::tokenizer_files(staging.path());
    }
    for (auto& [name, bytes] : tokenizer_files) write_file(staging.path() / name, bytes);
    const Tokenizer tokenizer = Tokenizer::from_folder(staging.path());
    const std::int64_t bos = tokenizer_files.contains("tokenizer.model")
                                 ? SentencePiece::from_file(staging.path() / "tokenizer.model").bos_id()
                                 : -1;
    require(config.vocab_size >= tokenizer.vocab_size(), "train: the model's vocab_size ", config.vocab_size,
            " is smaller than the tokenizer's ", tokenizer.vocab_size());
    detail::fit_config<F>(config, config.vocab_size, o.context);
    config = F::Config::from_json(config.to_json());  // the checks a loader makes

    const auto train_rows = pack(tokenize(corpus.train, tokenizer, bos), o.context, o.padded, "training");
    const auto held_rows = pack(tokenize(corpus.held_out, tokenizer, bos), o.context, o.padded, "held-out");
    const Json run =
        run_json(F::family, config.to_json(), o, bos, corpus.hash, detail::tokenizer_hash(tokenizer_files));

    const auto state = resuming ? read_trainer_state(out / "trainer_state.json") : TrainerState{};
    if (resuming) {
        for (auto& [key, value] : run.items())
            require(state.run.contains(key) && state.run.at(key) == value, "train: --resume: ", out.string(),
                    " was trained with a different ", key, " (",
                    state.run.contains(key) ? state.run.at(key).dump() : "none", " there, ", value.dump(), " here)");
        require(state.tokenizer_vocab_size == tokenizer.vocab_size(),
                "train: --resume: ", (out / "trainer_state.json").string(), " says the tokenizer has ",
                state.tokenizer_vocab_size, " tokens, but its files there have ", tokenizer.vocab_size());
    }

    const Placement placement{o.device, at::kFloat};
    const Needs all{{0, config.layers()}, true, true};
    F model = resuming ? F::load(out, placement, all) : F::untrained(config, placement, o.seed, all);
    auto params = parameters_of(model);
    for (auto& p : params) p.requires_grad_(true);
    AdamW optimizer(params, o.adamw);
    std::vector<LogEntry> log;
    std::int64_t start = 0;
    if (resuming) {
        start = state.step;
        auto moments = Checkpoint::open(out / "optimizer.safetensors");
        optimizer.restore(state.adam_steps, [&](const std::string& name, at::IntArrayRef shape) {
            return moments.load(name, placement, shape);
        });
        log = detail::read_log(out / "log.jsonl", start, warn);
    }

    const Schedule schedule{o.lr, o.warmup, o.steps, o.decay, o.min_lr_ratio};
    const auto N = train_rows.size(0), per_step = o.batch * o.accumulation;
    // Epoch e visits the rows in a permutation seeded by (seed, e): batch k of the run is a pure
    // function of k, so a resumed run sees the batches the uninterrupted one would have.
    std::map<std::int64_t, at::Tensor> epochs;
    auto rows_of = [&](std::int64_t micro) {
        std::vector<std::int64_t> index(o.batch);
        for (std::int64_t b = 0; b < o.batch; ++b) {
            const auto k = micro * o.batch + b, e = k / N;
            auto& perm = epochs[e];
            if (!perm.defined()) {
                auto gen =
                    at::make_generator<at::CPUGeneratorImpl>(init::tensor_seed(o.seed, "epoch " + std::to_string(e)));
                perm = at::randperm(N, gen, at::kLong);
            }
            index[b] = perm[k % N].item<std::int64_t>();
        }
        return train_rows.index_select(0, at::tensor(index, at::kLong)).to(o.device);
    };

    auto save = [&](std::int64_t step) {
        save_safetensors(model, staging.path());
        write_safetensors(staging.path() / "optimizer.safetensors", optimizer.state());
        for (auto& [name, bytes] : tokenizer_files) write_file(staging.path() / name, bytes);
        std::string lines;
        for (auto& e : log) lines += detail::log_json(e).dump() + "\n";
        write_file(staging.path() / "log.jsonl", lines);
        write_file(staging.path() / "report.html", detail::report_html(F::family, run, log));
        const Json state{{"step", step},
                         {"adam_steps", optimizer.steps_taken()},
                         {"run", run},
                         {"tokenizer_vocab_size", tokenizer.vocab_size()}};
        write_file(staging.path() / "trainer_state.json", state.dump(2) + "\n");
        staging.commit();
    };

    const bool autocast = o.autocast && o.device.is_cuda();
    std::int64_t last_checkpoint = resuming ? start : -1;
    const auto stop = o.until > 0 ? std::min(o.until, o.steps) : o.steps;
    double busy = 0;
    TrainResult result;
    for (std::int64_t step = start; step < stop; ++step) {
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = schedule(step);
        optimizer.zero_grad();
        double loss_sum = 0;
        for (std::int64_t a = 0; a < o.accumulation; ++a) {
            const auto rows = rows_of(step * o.accumulation + a);
            at::Tensor loss;
            {
                at::autocast::set_enabled(autocast);
                if (autocast) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
                auto [sum, count] = summed_loss(model, rows);
                loss = sum / double(std::max<std::int64_t>(count, 1) * o.accumulation);
                at::autocast::set_enabled(false);
                if (autocast) at::autocast::clear_cache();
            }
            loss.backward();
            loss_sum += loss.item<double>();
        }
        const double norm = optimizer.clip(o.clip);
        if (!std::isfinite(loss_sum) || !std::isfinite(norm))
            fail("train: the loss is ", loss_sum, " (gradient norm ", norm, ") at step ", step + 1, "; stopped there. ",
                 last_checkpoint >= 0 ? "The last good checkpoint (step " + std::to_string(last_checkpoint) +
                                            ") is kept in " + out.string()
                                      : "No checkpoint had been written yet, so nothing was");
        optimizer.step(lr);
        busy += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        LogEntry e{step + 1, loss_sum, lr, norm, 0, 0, std::nullopt};
        const double done = double(step + 1 - start);
        e.tokens_per_second = done * double(per_step * o.context) / busy;
        e.eta_seconds = busy / done * double(stop - step - 1);
        const bool last = step + 1 == stop;
        if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last)
            e.held_out = cross_entropy(model, held_rows, o.batch, o.eval_contexts);
        log.push_back(e);
        if (o.progress) o.progress(e);
        if (last || (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0))
            save(step + 1), last_checkpoint = step + 1;
    }
    result.log = log;
    result.held_out = log.empty() || !log.back().held_out ? cross_entropy(model, held_rows, o.batch, o.eval_contexts)
                                                          : *log.back().held_out;
    result.tokens_per_second = log.empty() ? 0 : log.back().tokens_per_second;
    return result;
}

// What `inputrep eval` reports for a trained folder on a corpus.
struct Evaluation {
    double cross_entropy = 0, bigram = 0;
    std::int64_t tokens = 0, contexts = 0;
};

// The model's held-out cross-entropy on the held-out documents of `files` (the split and context
// its trainer_state.json names), next to the bigram baseline estimated on their training documents.
template <class F>
Evaluation evaluate(const fs::path& folder, const std::vector<fs::path>& files, const Placement& placement = {}) {
    require(fs::exists(folder / "trainer_state.json"), folder.string(),
            ": no trainer_state.json (evaluate a folder `inputrep train` wrote)");
    const auto state_file = (folder / "trainer_state.json").string();
    const Json run = read_trainer_state(state_file).run;
    const auto where = state_file + ": \"run\"";
    const auto T = json_field<std::int64_t>(run, "context", where), bos = json_field<std::int64_t>(run, "bos", where);
    require(T >= 1, where, ": \"context\" is ", T, ", not a positive number");
    const bool padded = json_field<bool>(run, "padded", where);
    const Corpus corpus = read_corpus(files, json_field<double>(run, "held_out", where));
    const Tokenizer tokenizer = Tokenizer::from_folder(folder);
    const auto train_rows = pack(tokenize(corpus.train, tokenizer, bos), T, padded, "training");
    const auto held_rows = pack(tokenize(corpus.held_out, tokenizer, bos), T, padded, "held-out");
    const F model = load<F>(folder, placement);
    Evaluation ev;
    ev.cross_entropy = cross_entropy(model, held_rows, 16);
    if (!std::isfinite(ev.cross_entropy)) {
        // Name the first weight that is not finite; finite weights can still overflow the logits.
        for (const auto& [name, t] : model.named_tensors())
            require(at::isfinite(t).all().template item<bool>(), "eval: ", folder.string(), ": the weight ", name,
                    " holds NaN or inf, so the cross-entropy is ", ev.cross_entropy);
        fail("eval: ", folder.string(), ": the held-out cross-entropy is ", ev.cross_entropy,
             " though every weight is finite: the logits overflow (weights of an unusable scale?)");
    }
    ev.bigram = bigram_cross_entropy(train_rows, held_rows, model.vocab_size());
    ev.contexts = held_rows.size(0);
    ev.tokens = (held_rows.narrow(1, 1, T) != ignore_id).sum().item<std::int64_t>();
    return ev;
}

}  // namespace inputrep::train
