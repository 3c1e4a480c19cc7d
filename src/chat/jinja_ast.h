#pragma once
// The Jinja syntax tree: expressions and statements, each a small tagged struct.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace minnow::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    Const,     // value
    Name,      // name
    List,      // kids
    Tuple,     // kids
    Dict,      // kids: k0, v0, k1, v1, ...
    Attr,      // kids[0].name
    Item,      // kids[0][kids[1]]
    Slice,     // kids[0][kids[1]:kids[2]:kids[3]] (null kids allowed)
    Call,      // kids[0](kids[1..], kwargs)
    Filter,    // kids[0] | name(kids[1..], kwargs); kids[0] may be null inside a filter block
    Test,      // kids[0] is name(kids[1..], kwargs)
    Unary,     // op kids[0]: "-", "+", "not"
    Binary,    // kids[0] op kids[1]: + - * / // % ** ~ and or
    Compare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ...: == != < <= > >= in notin
    Cond,      // kids[1] if kids[0] else kids[2] (kids[2] may be null)
  };
  Kind kind;
  int line = 0;
  int height = 1;  // levels of the tree from here down (the parser refuses tall trees: jinja_parser.cpp)
  Value value;
  std::string name;  // Name, Attr, Call-less names, Filter/Test name, Unary/Binary op
  std::vector<ExprPtr> kids;
  std::vector<std::string> ops;  // Compare
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct MacroParam {
  std::string name;
  ExprPtr def;  // may be null
};

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // expr
    If,        // conds[i] -> bodies[i]; else_body
    For,       // target in expr [if cond] body else else_body
    Set,       // target = expr
    SetBlock,  // target = rendered body (then filter, if any)
    Macro,     // name(params) body; also used for the `caller` of a call block
    CallBlock, // expr (a call) with caller = macro (params, body)
    FilterBlock,  // filter applied to the rendered body
    Break,
    Continue,
    Generation,  // body rendered as is
    With,      // params (name = value, evaluated outside) visible in body only
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string name;
  ExprPtr target;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
};

}  // namespace minnow::jinja
