// The machinery of an argument table: a flag declared once (names, the
// options member it sets, help, checks) and read, printed, saved and
// checked from that one declaration. The table itself, with every flag of
// every command, is train/options.h; the command line (cli/) and the
// checkpoint's saved options are built from it.
//
//   struct O { TORCH_ARG(double, lr) = 0.03; };
//   auto lr = args::field<O>(MOCO_MEMBER(lr));
//   O o;
//   lr.set(o, args::parse("0.5", lr.get(o), "--lr"));   // o.lr() == 0.5
//   args::Check c = args::positive();
//   c(lr.get(o));                                      // "" (fine)
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace moco::args {

// The types a flag may have.
using Value = std::variant<bool, int64_t, double, std::string,
                           std::vector<int64_t>, std::vector<std::string>>;

// How a flag is spelled on the command line.
enum class Style {
  value,    // --lr 0.5
  flag,     // --mlp (true); --mlp=false also parses
  negated,  // --no-progress sets the bool member to false
  on_off,   // --blur on | off
};

// Reads an options member; `get` on a const object, `set` with a value of
// the member's own type.
template <class Options>
struct Field {
  std::function<Value(const Options&)> get;
  std::function<void(Options&, const Value&)> set;
};

// MOCO_MEMBER(lr): the TORCH_ARG member `lr` of any options struct, as a
// generic accessor that field<O>() binds to a concrete type.
#define MOCO_MEMBER(name) \
  [](auto& o) -> decltype(o.name()) { return o.name(); }

template <class Options, class Member>
Field<Options> field(Member member) {
  using T = std::decay_t<decltype(member(std::declval<Options&>()))>;
  static_assert(std::is_constructible_v<Value, T>,
                "flags are bool, int64_t, double, string or a vector of "
                "int64_t or string");
  return {[member](const Options& o) {
            return Value(T(member(const_cast<Options&>(o))));
          },
          [member](Options& o, const Value& v) { member(o) = std::get<T>(v); }};
}

// Parses `text` into a value of the type `like` holds; errors name `flag`
// ("expected --moco-k an integer, got 'lots'"). Booleans take true/false,
// on/off, yes/no, 1/0; integer lists are comma- or space-separated; a
// string list takes the text as one element.
Value parse(const std::string& text, const Value& like, const std::string& flag);
// Parses each of several command-line words into one value (lists take
// many words, everything else exactly one).
Value parse_words(const std::vector<std::string>& words, const Value& like,
                  const std::string& flag);

// The value as the command line spells it ("0.03", "120 160", "on").
std::string to_string(const Value& v, Style style = Style::value);
// What --help shows for the value: INT, FLOAT, TEXT, "INT ...", on|off.
std::string type_name(const Value& v, Style style);
nlohmann::json to_json(const Value& v);
// A JSON value of the type `like` holds (integers read as doubles where
// the flag is a double); errors name `flag`.
Value from_json(const nlohmann::json& j, const Value& like,
                const std::string& flag);

// A check returns "" when the value is fine, else what was expected after
// "expected --flag " ("> 0", "in [0, 1)", "one of off, bf16, fp16").
using Check = std::function<std::string(const Value&)>;
Check positive();           // > 0 (and finite)
Check non_negative();       // >= 0 (and finite)
Check at_least(double lo);  // >= lo
Check at_most(double hi, std::string why);           // <= hi ("<= 8 (why)")
Check in_range(double lo, double hi, bool hi_open);  // [lo, hi] or [lo, hi)
Check one_of(std::vector<std::string> allowed);      // strings, or integers
Check each_non_negative(std::string what);  // every list element >= 0

// Runs the checks; throws c10::Error "expected FLAG EXPECTATION, got VALUE".
void check(const Value& v, const std::vector<Check>& checks,
           const std::string& flag);

// "--batch-size" from "-b,--batch-size" (the first long name); "data" for
// a positional.
std::string long_name(const std::string& names);
// The JSON / preset key: "batch_size" from "-b,--batch-size".
std::string key_of(const std::string& names);

// The closest of `candidates` to `word` by edit distance, or "" when none
// is close (for "did you mean --moco-k?").
std::string closest(const std::string& word,
                    const std::vector<std::string>& candidates);

}  // namespace moco::args
