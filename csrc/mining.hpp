#pragma once
#include "csr.hpp"

namespace fastregen {}  // namespace fastregen
