#include "core/args.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/text.h"

namespace moco::args {

namespace {

bool parse_bool(const std::string& text, bool* out) {
  const std::string t = to_lower(text);
  if (t == "true" || t == "on" || t == "yes" || t == "1") {
    *out = true;
    return true;
  }
  if (t == "false" || t == "off" || t == "no" || t == "0") {
    *out = false;
    return true;
  }
  return false;
}

bool parse_int(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  *out = v;
  return true;
}

bool parse_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  *out = v;
  return true;
}

// Numbers as the user typed them: the shortest form that reads back equal.
std::string format_double(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return fmt::format("{:.0f}", v);
  }
  for (int digits = 1; digits <= 17; ++digits) {
    const std::string s = fmt::format("{:.{}g}", v, digits);
    if (std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return fmt::format("{}", v);
}

double as_number(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return NAN;
}

}  // namespace

Value parse(const std::string& text, const Value& like, const std::string& flag) {
  return std::visit(
      [&](const auto& kind) -> Value {
        using T = std::decay_t<decltype(kind)>;
        if constexpr (std::is_same_v<T, bool>) {
          bool b = false;
          TORCH_CHECK(parse_bool(text, &b), "expected ", flag,
                      " on or off (true/false), got '", text, "'");
          return b;
        } else if constexpr (std::is_same_v<T, int64_t>) {
          int64_t i = 0;
          TORCH_CHECK(parse_int(text, &i), "expected ", flag,
                      " an integer, got '", text, "'");
          return i;
        } else if constexpr (std::is_same_v<T, double>) {
          double d = 0;
          TORCH_CHECK(parse_double(text, &d), "expected ", flag,
                      " a number, got '", text, "'");
          return d;
        } else if constexpr (std::is_same_v<T, std::string>) {
          return text;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          return std::vector<std::string>{text};
        } else {
          std::vector<int64_t> list;
          std::string item;
          std::istringstream in(text);
          while (in >> item) {
            std::string part;
            std::istringstream parts(item);
            while (std::getline(parts, part, ',')) {
              if (part.empty()) continue;
              int64_t i = 0;
              TORCH_CHECK(parse_int(part, &i), "expected ", flag,
                          " a list of integers, got '", text, "'");
              list.push_back(i);
            }
          }
          return list;
        }
      },
      like);
}

Value parse_words(const std::vector<std::string>& words, const Value& like,
                  const std::string& flag) {
  if (std::holds_alternative<std::vector<std::string>>(like)) return words;
  if (std::holds_alternative<std::vector<int64_t>>(like)) {
    std::string joined;
    for (const auto& w : words) joined += w + " ";
    return parse(joined, like, flag);
  }
  TORCH_CHECK(words.size() == 1, "expected one value for ", flag, ", got ",
              words.size());
  return parse(words.front(), like, flag);
}

std::string to_string(const Value& v, Style style) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (style == Style::on_off) return x ? "on" : "off";
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_double(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string s;
          for (size_t i = 0; i < x.size(); ++i) s += (i ? " " : "") + x[i];
          return s;
        } else {
          std::string s;
          for (size_t i = 0; i < x.size(); ++i) {
            s += (i ? " " : "") + std::to_string(x[i]);
          }
          return s;
        }
      },
      v);
}

nlohmann::json to_json(const Value& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

Value from_json(const nlohmann::json& j, const Value& like,
                const std::string& flag) {
  try {
    return std::visit(
        [&](const auto& kind) -> Value {
          using T = std::decay_t<decltype(kind)>;
          if constexpr (std::is_same_v<T, double>) {
            TORCH_CHECK(j.is_number(), "not a number");
            return j.get<double>();
          } else if constexpr (std::is_same_v<T, int64_t>) {
            TORCH_CHECK(j.is_number_integer(), "not an integer");
            return j.get<int64_t>();
          } else if constexpr (std::is_same_v<T, bool>) {
            TORCH_CHECK(j.is_boolean(), "not a boolean");
            return j.get<bool>();
          } else {
            return j.get<T>();
          }
        },
        like);
  } catch (const std::exception&) {
    TORCH_CHECK(false, "saved value of ", flag, " (", j.dump(),
                ") is not of the flag's type");
  }
}

std::string type_name(const Value& v, Style style) {
  switch (v.index()) {
    case 0: return style == Style::on_off ? "on|off" : "";
    case 1: return "INT";
    case 2: return "FLOAT";
    case 3: return "TEXT";
    case 4: return "INT ...";
    default: return "TEXT";
  }
}

Check positive() {
  return [](const Value& v) {
    const double x = as_number(v);
    return std::isfinite(x) && x > 0 ? "" : "> 0";
  };
}

Check non_negative() {
  return [](const Value& v) {
    const double x = as_number(v);
    return std::isfinite(x) && x >= 0 ? "" : ">= 0";
  };
}

Check at_least(double lo) {
  return [lo](const Value& v) {
    const double x = as_number(v);
    return std::isfinite(x) && x >= lo ? std::string()
                                       : ">= " + format_double(lo);
  };
}

Check at_most(double hi, std::string why) {
  return [=](const Value& v) {
    const double x = as_number(v);
    return std::isfinite(x) && x <= hi
               ? std::string()
               : fmt::format("<= {} ({})", format_double(hi), why);
  };
}

Check in_range(double lo, double hi, bool hi_open) {
  return [=](const Value& v) {
    const double x = as_number(v);
    const bool ok = std::isfinite(x) && x >= lo && (hi_open ? x < hi : x <= hi);
    return ok ? std::string()
              : fmt::format("in [{}, {}{}", format_double(lo), format_double(hi),
                            hi_open ? ")" : "]");
  };
}

Check one_of(std::vector<std::string> allowed) {
  return [allowed](const Value& v) {
    const std::string s = to_string(v);
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) {
      return std::string();
    }
    std::string list;
    for (size_t i = 0; i < allowed.size(); ++i) {
      list += (i ? ", " : "") + allowed[i];
    }
    return "one of " + list;
  };
}

Check each_non_negative(std::string what) {
  return [what](const Value& v) {
    for (int64_t x : std::get<std::vector<int64_t>>(v)) {
      if (x < 0) return what + " >= 0";
    }
    return std::string();
  };
}

void check(const Value& v, const std::vector<Check>& checks,
           const std::string& flag) {
  for (const auto& c : checks) {
    const std::string expected = c(v);
    TORCH_CHECK(expected.empty(), "expected ", flag, " ", expected, ", got ",
                std::holds_alternative<std::string>(v)
                    ? "'" + to_string(v) + "'"
                    : to_string(v));
  }
}

std::string long_name(const std::string& names) {
  std::string first_long, first;
  std::istringstream in(names);
  std::string n;
  while (std::getline(in, n, ',')) {
    if (n.empty()) continue;
    if (n[0] == '!') n = n.substr(1);
    if (first.empty()) first = n;
    if (n.rfind("--", 0) == 0 && first_long.empty()) first_long = n;
  }
  return first_long.empty() ? first : first_long;
}

std::string key_of(const std::string& names) {
  std::string k = long_name(names);
  while (!k.empty() && k[0] == '-') k.erase(0, 1);
  if (k.rfind("no-", 0) == 0) k.erase(0, 3);  // --no-progress -> progress
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

std::string closest(const std::string& word,
                    const std::vector<std::string>& candidates) {
  // Levenshtein distance; a suggestion only within a third of the length.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                           diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace moco::args
