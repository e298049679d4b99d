#pragma once
// trainer_state.json, what `--resume` continues from: the steps done, AdamW's own count of them,
// the tokenizer's size and the run's identity (run_json in train.hpp). Read and checked here,
// without libtorch, so that a fuzzer can hand it any bytes: a state whose numbers cannot belong to
// one run (a step of -1, past the run's steps, or not AdamW's count) is refused, never resumed.
#include <cstdint>
#include <filesystem>
#include <string>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/json.hpp>

namespace inputrep::train {

struct TrainerState {
    std::int64_t step = 0, adam_steps = 0, tokenizer_vocab_size = 0;
    Json run;  // the run's identity, compared key by key on resume
};

// `text` as a trainer state; `where` (the file) starts every message.
inline TrainerState parse_trainer_state(std::string_view text, const std::string& where) {
    const Json j = parse_json(text, where);
    TrainerState s;
    s.step = json_field<std::int64_t>(j, "step", where);
    s.adam_steps = json_field<std::int64_t>(j, "adam_steps", where);
    s.tokenizer_vocab_size = json_field<std::int64_t>(j, "tokenizer_vocab_size", where);
    s.run = json_field<Json>(j, "run", where);
    const auto steps = json_field<std::int64_t>(s.run, "steps", where + ": \"run\"");
    require(steps > 0, where, ": the run's \"steps\" is ", steps, ", not a positive number");
    require(s.step >= 0 && s.step <= steps, where, ": \"step\" is ", s.step, ", outside the run's 0 to ", steps,
            " steps");
    require(s.adam_steps == s.step, where, ": AdamW took ", s.adam_steps, " steps (\"adam_steps\") where the run took ",
            s.step, " (\"step\"): not one run's state");
    require(s.tokenizer_vocab_size > 0, where, ": \"tokenizer_vocab_size\" is ", s.tokenizer_vocab_size,
            ", not a positive number");
    return s;
}

inline TrainerState read_trainer_state(const std::filesystem::path& path) {
    return parse_trainer_state(read_file(path, "trainer state"), path.string());
}

}  // namespace inputrep::train
