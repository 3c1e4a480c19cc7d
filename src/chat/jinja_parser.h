#pragma once
// Jinja parser: tokens to a statement tree. Unsupported constructs throw Error naming the construct and line.
#include <string_view>

#include "chat/jinja_ast.h"

namespace minnow::jinja {

Body parse_template(std::string_view source);

}  // namespace minnow::jinja
