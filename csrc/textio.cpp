// See textio.hpp.
#include "textio.hpp"

namespace fastregen {}  // namespace fastregen
