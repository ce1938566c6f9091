// See mining.hpp.
#include "mining.hpp"

namespace fastregen {}  // namespace fastregen
