// The Boost.Test module with Boost.Test compiled in (its header-only variant): for builds without
// the compiled library, as on a machine that has only copied headers (scripts/gpu-check).
#define BOOST_TEST_MODULE inputrep
#include <boost/test/included/unit_test.hpp>
