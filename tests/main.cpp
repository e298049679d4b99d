// The one Boost.Test module of inputrep; each suite lives in its own file and runs as its own CTest test.
#define BOOST_TEST_MODULE inputrep
#include <boost/test/unit_test.hpp>
