// config.json values as the families read them (io/hf_config.hpp): integers that do not fit are
// clear errors, never a conversion (no libtorch: also built under ASan+UBSan).
#include <boost/test/unit_test.hpp>

#include <cstdint>

#include <inputrep/io/hf_config.hpp>

#include "common.hpp"

using inputrep::config_value;
using inputrep::Error;
using inputrep::Json;
using testing::says;

BOOST_AUTO_TEST_SUITE(config_json)

// The fuzz harness config_llama (now `config`) found "max_position_embeddings": 1.1e87 converted to
// int64 (undefined behaviour).
BOOST_AUTO_TEST_CASE(integer_keys_take_only_integers_that_fit) {
    const auto config = Json::parse(R"({"a": 4096, "b": 4096.0, "c": 1.1e87, "d": 2.5, "e": 9223372036854775808,
                                        "f": -3, "g": "7", "h": 9.3e18, "i": -9.3e18, "j": 3000000000})");
    BOOST_TEST(config_value<std::int64_t>(config, "a", 0) == 4096);
    BOOST_TEST(config_value<std::int64_t>(config, "b", 0) == 4096);  // many writers print integers as doubles
    BOOST_TEST(config_value<std::int64_t>(config, "f", 0) == -3);
    BOOST_TEST(config_value<std::int64_t>(config, "absent", 7) == 7);
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "c", 0), Error,
                          says("\"c\" is 1.1e+87, not an integer in ["));
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "d", 0), Error, says("\"d\" is 2.5, not an integer"));
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "e", 0), Error,
                          says("\"e\" is 9223372036854775808, not an integer"));
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "h", 0), Error, says("not an integer"));
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "i", 0), Error, says("not an integer"));
    BOOST_CHECK_EXCEPTION(config_value<int>(config, "j", 0), Error,
                          says("\"j\" is 3000000000, not an integer in [-2147483648, 2147483647]"));
    BOOST_CHECK_EXCEPTION(config_value<std::int64_t>(config, "g", 0), Error, says("\"g\" has the wrong type"));
    BOOST_TEST(config_value<double>(config, "c", 0.0) == 1.1e87);
}

// --config and --untrained FAMILY:... overrides: key=value at the first '=' (a value may hold one),
// JSON where the value parses as JSON; a piece without a key and an '=' is refused.
BOOST_AUTO_TEST_CASE(overrides_split_at_the_first_equals_sign) {
    const auto overrides = inputrep::parse_overrides("n_layer=2,activation_function=gelu,note=a=b");
    BOOST_REQUIRE_EQUAL(overrides.size(), 3u);
    BOOST_TEST(overrides[0].first == "n_layer");
    BOOST_TEST(overrides[0].second == Json(2));
    BOOST_TEST(overrides[1].second == Json("gelu"));
    BOOST_TEST(overrides[2].first == "note");
    BOOST_TEST(overrides[2].second == Json("a=b"));
    BOOST_TEST(inputrep::parse_overrides("").empty());
    for (auto bad : {"n_layer", "=2", "n_layer=2,,n_embd=8"})
        BOOST_CHECK_EXCEPTION(inputrep::parse_overrides(bad), Error, says("is not key=value"));
}

BOOST_AUTO_TEST_SUITE_END()
