// See entropy.hpp.
#include "entropy.hpp"

namespace fastregen {}  // namespace fastregen
