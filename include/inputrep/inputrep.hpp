#pragma once
// inputrep: input representation for language models. One include for everything.
#include <inputrep/attribution/attribution.hpp>
#include <inputrep/attribution/html.hpp>
#include <inputrep/core/device.hpp>
#include <inputrep/core/error.hpp>
#include <inputrep/experiment.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/io/save_safetensors.hpp>
#include <inputrep/model/families.hpp>
#include <inputrep/model/load.hpp>
#include <inputrep/model/swap.hpp>
#include <inputrep/results.hpp>
#include <inputrep/search/exact.hpp>
#include <inputrep/search/generate.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>
