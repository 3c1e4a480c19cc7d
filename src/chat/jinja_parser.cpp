#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_lexer.h"
#include "common/error.h"

namespace minnow::jinja {
namespace {

using TT = Token::Type;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_all() {
    Body b = parse_body({});
    if (cur().type != TT::Eof) fail("unexpected tag");
    return b;
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;
  int depth_ = 0;
  // Bounds parser recursion (nested brackets, `not`, statements) so hostile templates can't overflow the stack.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > 200) p.fail("template nested too deeply");
    }
    ~Nest() { --p.depth_; }
  };

  // Deep expression trees (long operator, filter or attribute chains, which the loops below build without
  // recursing) are refused here, so evaluating and freeing a tree never recurses deeper than this.
  static constexpr int kMaxExprHeight = 256;
  ExprPtr seal(ExprPtr e) const {
    int h = 0;
    for (const auto& k : e->kids)
      if (k) h = std::max(h, k->height);
    for (const auto& kv : e->kwargs)
      if (kv.second) h = std::max(h, kv.second->height);
    e->height = h + 1;
    if (e->height > kMaxExprHeight)
      fail("expression nested too deeply (over " + std::to_string(kMaxExprHeight) + " levels)", e->line);
    return e;
  }

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& tk = t_[p_];
    if (p_ + 1 < t_.size()) ++p_;
    return tk;
  }
  [[noreturn]] void fail(const std::string& msg, int line = -1) const {
    throw Error("template line " + std::to_string(line < 0 ? cur().line : line) + ": " + msg);
  }
  bool is_op(const char* op) const { return cur().type == TT::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == TT::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& tk) {
    switch (tk.type) {
      case TT::Text: return "text";
      case TT::VarBegin: return "'{{'";
      case TT::VarEnd: return "'}}'";
      case TT::BlockBegin: return "'{%'";
      case TT::BlockEnd: return "'%}'";
      case TT::Name: return "name '" + tk.text + "'";
      case TT::String: return "string";
      case TT::Int: case TT::Float: return "number";
      case TT::Op: return "'" + tk.text + "'";
      case TT::Eof: return "end of template";
    }
    return "token";
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != TT::Name) fail("expected a name, got " + describe(cur()));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != TT::BlockEnd) fail("expected end of statement '%}', got " + describe(cur()));
    next();
  }

  static ExprPtr mk(EK k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  static StmtPtr mks(SK k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  // ---------------------------------------------------------------- statements
  bool at_end_tag(const std::vector<std::string>& ends) const {
    if (cur().type != TT::BlockBegin || peek().type != TT::Name) return false;
    return std::find(ends.begin(), ends.end(), peek().text) != ends.end();
  }

  Body parse_body(const std::vector<std::string>& ends) {
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.type == TT::Eof) {
        if (!ends.empty()) fail("missing end tag: expected '{% " + ends.back() + " %}'");
        return body;
      }
      if (tk.type == TT::Text) {
        auto s = mks(SK::Text, tk.line);
        s->text = tk.text;
        next();
        body.push_back(std::move(s));
      } else if (tk.type == TT::VarBegin) {
        int line = tk.line;
        next();
        auto s = mks(SK::Output, line);
        s->expr = parse_tuple(true);
        if (cur().type != TT::VarEnd) fail("expected '}}', got " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (tk.type == TT::BlockBegin) {
        if (at_end_tag(ends)) return body;
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(tk));
      }
    }
  }

  // Consumes "{% name %}" for an end/else tag.
  std::string take_tag() {
    next();  // BlockBegin
    std::string n = expect_name();
    return n;
  }

  // The "%}" of an opening tag, the body, then its "{% end %}" (the only tag that closes it).
  Body block_body(const char* end) {
    expect_block_end();
    Body body = parse_body({end});
    take_tag();
    expect_block_end();
    return body;
  }

  StmtPtr parse_statement() {
    Nest nest(*this);
    next();  // BlockBegin
    if (cur().type != TT::Name) fail("expected a statement name, got " + describe(cur()));
    int line = cur().line;
    std::string kw = next().text;
    if (kw == "if") return parse_if(line);
    if (kw == "for") return parse_for(line);
    if (kw == "set") return parse_set(line);
    if (kw == "macro") return parse_macro(line);
    if (kw == "call") return parse_call_block(line);
    if (kw == "filter") return parse_filter_block(line);
    if (kw == "break" || kw == "continue") {
      expect_block_end();
      return mks(kw == "break" ? SK::Break : SK::Continue, line);
    }
    if (kw == "with") {
      auto s = mks(SK::With, line);
      while (cur().type != TT::BlockEnd) {
        MacroParam mp;
        mp.name = expect_name();
        expect_op("=");
        mp.def = parse_expression(true);
        s->params.push_back(std::move(mp));
        if (!skip_op(",")) break;
      }
      s->body = block_body("endwith");
      return s;
    }
    if (kw == "generation") {
      auto s = mks(SK::Generation, line);
      s->body = block_body("endgeneration");
      return s;
    }
    fail("unsupported statement '" + kw + "'", line);
  }

  StmtPtr parse_if(int line) {
    auto s = mks(SK::If, line);
    s->conds.push_back(parse_tuple(false));
    expect_block_end();
    while (true) {
      s->bodies.push_back(parse_body({"elif", "else", "endif"}));
      std::string tag = take_tag();
      if (tag == "elif") {
        s->conds.push_back(parse_tuple(false));
        expect_block_end();
        continue;
      }
      if (tag == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"});
        take_tag();
      }
      expect_block_end();
      return s;
    }
  }

  StmtPtr parse_for(int line) {
    auto s = mks(SK::For, line);
    s->target = parse_assign_target(false);
    if (!skip_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
    s->expr = parse_tuple(false, true);
    if (is_name("recursive")) fail("unsupported construct 'recursive' loop");
    if (skip_name("if")) s->cond = parse_expression(true);
    expect_block_end();
    s->body = parse_body({"endfor", "else"});
    if (take_tag() == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"});
      take_tag();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(int line) {
    ExprPtr target = parse_assign_target(true);
    if (skip_op("=")) {
      auto s = mks(SK::Set, line);
      s->target = std::move(target);
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    auto s = mks(SK::SetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->expr = parse_filter_chain(nullptr);
    s->body = block_body("endset");
    return s;
  }

  void parse_params(std::vector<MacroParam>& params) {
    expect_op("(");
    while (!is_op(")")) {
      MacroParam mp;
      mp.name = expect_name();
      if (skip_op("=")) mp.def = parse_expression(true);
      params.push_back(std::move(mp));
      if (!skip_op(",")) break;
    }
    expect_op(")");
  }

  StmtPtr parse_macro(int line) {
    auto s = mks(SK::Macro, line);
    s->name = expect_name();
    parse_params(s->params);
    expect_block_end();
    s->body = parse_body({"endmacro"});
    take_tag();
    if (cur().type == TT::Name) next();  // {% endmacro name %}
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block(int line) {
    auto s = mks(SK::CallBlock, line);
    if (is_op("(")) parse_params(s->params);
    s->expr = parse_expression(true);
    if (s->expr->kind != EK::Call) fail("expected a macro call in call block", line);
    s->body = block_body("endcall");
    return s;
  }

  StmtPtr parse_filter_block(int line) {
    auto s = mks(SK::FilterBlock, line);
    s->expr = parse_filter_chain(nullptr, /*leading_pipe=*/false);
    s->body = block_body("endfilter");
    return s;
  }

  ExprPtr parse_assign_target(bool allow_attr) {
    int line = cur().line;
    auto one = [&]() -> ExprPtr {
      if (skip_op("(")) {
        ExprPtr t = parse_assign_target(false);
        expect_op(")");
        return t;
      }
      auto n = mk(EK::Name, cur().line);
      n->name = expect_name();
      if (allow_attr && is_op(".")) {
        next();
        auto a = mk(EK::Attr, n->line);
        a->name = expect_name();
        a->kids.push_back(std::move(n));
        return a;
      }
      return n;
    };
    ExprPtr first = one();
    if (!is_op(",")) return first;
    auto tup = mk(EK::Tuple, line);
    tup->kids.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type != TT::Name && !is_op("(")) break;
      tup->kids.push_back(one());
    }
    return tup;
  }

  // ---------------------------------------------------------------- expressions
  bool at_tuple_end() const {
    const Token& tk = cur();
    if (tk.type == TT::VarEnd || tk.type == TT::BlockEnd || tk.type == TT::Eof) return true;
    if (tk.type == TT::Op && (tk.text == ")" || tk.text == "]" || tk.text == "}" || tk.text == "=")) return true;
    if (tk.type == TT::Name && (tk.text == "in" || tk.text == "if" || tk.text == "recursive")) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, bool for_iter = false) {
    int line = cur().line;
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tup = mk(EK::Tuple, line);
    tup->kids.push_back(std::move(first));
    while (skip_op(",")) {
      if (at_tuple_end()) break;
      tup->kids.push_back(parse_expression(with_condexpr));
    }
    (void)for_iter;
    return seal(std::move(tup));
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      int line = next().line;
      auto c = mk(EK::Cond, line);
      c->kids.push_back(parse_or());
      c->kids.push_back(std::move(e));
      c->kids.push_back(skip_name("else") ? parse_condexpr() : nullptr);
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = mk(EK::Binary, line);
    e->name = op;
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return seal(std::move(e));
  }

  // One left-associative level: operands from `sub`, joined by any of `ops` (keywords when `words`).
  template <class Sub>
  ExprPtr left_assoc(Sub sub, std::initializer_list<const char*> ops, bool words = false) {
    ExprPtr e = sub();
    for (;;) {
      const char* hit = nullptr;
      for (const char* o : ops)
        if (words ? is_name(o) : is_op(o)) {
          hit = o;
          break;
        }
      if (!hit) return e;
      const int line = next().line;
      e = binary(hit, std::move(e), sub(), line);
    }
  }

  ExprPtr parse_or() { return left_assoc([this] { return parse_and(); }, {"or"}, true); }
  ExprPtr parse_and() { return left_assoc([this] { return parse_not(); }, {"and"}, true); }
  ExprPtr parse_not() {
    Nest nest(*this);
    if (is_name("not")) {
      int line = next().line;
      auto e = mk(EK::Unary, line);
      e->name = "not";
      e->kids.push_back(parse_not());
      return seal(std::move(e));
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TT::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == TT::Name && peek().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = mk(EK::Compare, line);
        cmp->kids.push_back(std::move(e));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(parse_math1());
    }
    return cmp ? seal(std::move(cmp)) : std::move(e);
  }
  ExprPtr parse_math1() { return left_assoc([this] { return parse_concat(); }, {"+", "-"}); }
  ExprPtr parse_concat() { return left_assoc([this] { return parse_math2(); }, {"~"}); }
  ExprPtr parse_math2() { return left_assoc([this] { return parse_pow(); }, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return left_assoc([this] { return parse_unary(true); }, {"**"}); }
  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& tk = next();
      e = mk(EK::Unary, tk.line);
      e->name = tk.text;
      e->kids.push_back(parse_unary(false));
      e = seal(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& tk = cur();
    int line = tk.line;
    switch (tk.type) {
      case TT::Name: {
        std::string n = next().text;
        auto e = mk(EK::Const, line);
        if (n == "true" || n == "True") e->value = Value::boolean(true);
        else if (n == "false" || n == "False") e->value = Value::boolean(false);
        else if (n == "none" || n == "None") e->value = Value::none();
        else {
          e->kind = EK::Name;
          e->name = n;
        }
        return e;
      }
      case TT::String: {
        std::string s;
        while (cur().type == TT::String) s += next().text;
        auto e = mk(EK::Const, line);
        e->value = Value::string(std::move(s));
        return e;
      }
      case TT::Int: {
        auto e = mk(EK::Const, line);
        e->value = Value::integer(next().ival);
        return e;
      }
      case TT::Float: {
        auto e = mk(EK::Const, line);
        e->value = Value::number(next().fval);
        return e;
      }
      case TT::Op:
        if (tk.text == "(") {
          next();
          if (skip_op(")")) return mk(EK::Tuple, line);
          ExprPtr first = parse_expression(true);
          if (skip_op(")")) return first;
          auto tup = mk(EK::Tuple, line);
          tup->kids.push_back(std::move(first));
          while (skip_op(",")) {
            if (is_op(")")) break;
            tup->kids.push_back(parse_expression(true));
          }
          expect_op(")");
          return seal(std::move(tup));
        }
        if (tk.text == "[") {
          next();
          auto e = mk(EK::List, line);
          while (!is_op("]")) {
            e->kids.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("]");
          return seal(std::move(e));
        }
        if (tk.text == "{") {
          next();
          auto e = mk(EK::Dict, line);
          while (!is_op("}")) {
            e->kids.push_back(parse_expression(true));
            expect_op(":");
            e->kids.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("}");
          return seal(std::move(e));
        }
        break;
      default:
        break;
    }
    fail("unexpected " + describe(tk));
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("unsupported construct: *args/**kwargs in a call");
      if (cur().type == TT::Name && peek().type == TT::Op && peek().text == "=") {
        std::string k = next().text;
        next();
        call.kwargs.emplace_back(k, parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail("positional argument after keyword argument");
        call.kids.push_back(parse_expression(true));
      }
      if (!skip_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        int line = next().line;
        if (cur().type == TT::Int) {
          auto it = mk(EK::Item, line);
          auto idx = mk(EK::Const, line);
          idx->value = Value::integer(next().ival);
          it->kids.push_back(std::move(e));
          it->kids.push_back(std::move(idx));
          e = seal(std::move(it));
        } else {
          auto a = mk(EK::Attr, line);
          a->name = expect_name();
          a->kids.push_back(std::move(e));
          e = seal(std::move(a));
        }
      } else if (is_op("[")) {
        int line = next().line;
        ExprPtr a, b, c;
        bool slice = false;
        if (!is_op(":")) a = parse_expression(true);
        if (skip_op(":")) {
          slice = true;
          if (!is_op(":") && !is_op("]")) b = parse_expression(true);
          if (skip_op(":")) {
            if (!is_op("]")) c = parse_expression(true);
          }
        }
        expect_op("]");
        auto s = mk(slice ? EK::Slice : EK::Item, line);
        s->kids.push_back(std::move(e));
        s->kids.push_back(std::move(a));
        if (slice) {
          s->kids.push_back(std::move(b));
          s->kids.push_back(std::move(c));
        }
        e = seal(std::move(s));
      } else if (is_op("(")) {
        auto c = mk(EK::Call, cur().line);
        c->kids.push_back(std::move(e));
        parse_call_args(*c);
        e = seal(std::move(c));
      } else {
        return e;
      }
    }
  }

  // One filter (after the '|'): name with optional arguments, applied to e.
  ExprPtr parse_one_filter(ExprPtr e) {
    auto f = mk(EK::Filter, cur().line);
    f->name = expect_name();
    while (is_op(".")) {
      next();
      f->name.push_back('.');
      f->name += expect_name();
    }
    f->kids.push_back(std::move(e));
    if (is_op("(")) parse_call_args(*f);
    return seal(std::move(f));
  }

  ExprPtr parse_filter_chain(ExprPtr e, bool leading_pipe = true) {
    if (!leading_pipe) e = parse_one_filter(std::move(e));
    while (skip_op("|")) e = parse_one_filter(std::move(e));
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_one_filter(std::move(e));
      } else if (is_name("is")) {
        int line = next().line;
        bool negated = skip_name("not");
        auto t = mk(EK::Test, line);
        t->name = expect_name();
        while (is_op(".")) {
          next();
          t->name.push_back('.');
          t->name += expect_name();
        }
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((cur().type == TT::Name || cur().type == TT::String || cur().type == TT::Int ||
                    cur().type == TT::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("you cannot chain multiple tests with is");
          t->kids.push_back(parse_postfix(parse_primary()));
        }
        e = seal(std::move(t));
        if (negated) {
          auto n = mk(EK::Unary, line);
          n->name = "not";
          n->kids.push_back(std::move(e));
          e = seal(std::move(n));
        }
      } else if (is_op("(")) {
        auto c = mk(EK::Call, cur().line);
        c->kids.push_back(std::move(e));
        parse_call_args(*c);
        e = seal(std::move(c));
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse_all(); }

}  // namespace minnow::jinja
