#include "data/shards.h"

#include <archive.h>
#include <archive_entry.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/log.h"
#include "core/text.h"
#include "data/dataset.h"
#include "data/image_decode.h"

namespace moco::data {

namespace fs = std::filesystem;

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

bool is_image_ext(const std::string& ext) {
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_tar_name(const std::string& name) {
  const auto l = to_lower(name);
  return ends_with(l, ".tar") || ends_with(l, ".tar.gz") || ends_with(l, ".tgz");
}

constexpr size_t kMaxShards = 10'000'000;

void expand_into(const std::string& pattern, const std::string& prefix,
                 std::vector<std::string>& out, const std::string& whole) {
  const auto open = pattern.find('{');
  if (open == std::string::npos) {
    TORCH_CHECK(pattern.find('}') == std::string::npos, "shard pattern ", whole,
                ": '}' without '{'");
    out.push_back(prefix + pattern);
    TORCH_CHECK(out.size() <= kMaxShards, "shard pattern ", whole, " names more than ",
                kMaxShards, " shards");
    return;
  }
  const auto close = pattern.find('}', open);
  TORCH_CHECK(close != std::string::npos, "shard pattern ", whole, ": '{' without '}'");
  const std::string body = pattern.substr(open + 1, close - open - 1);
  TORCH_CHECK(body.find('{') == std::string::npos, "shard pattern ", whole,
              ": nested braces are not supported");
  const std::string head = prefix + pattern.substr(0, open);
  const std::string rest = pattern.substr(close + 1);
  std::vector<std::string> choices;
  const auto dots = body.find("..");
  if (dots != std::string::npos) {
    const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
    TORCH_CHECK(all_digits(a) && all_digits(b), "shard pattern ", whole, ": {", body,
                "} is not a range of whole numbers like {000000..000146}");
    TORCH_CHECK(a.size() <= 18 && b.size() <= 18, "shard pattern ", whole,
                ": numbers too long in {", body, "}");
    const int64_t lo = std::stoll(a), hi = std::stoll(b);
    TORCH_CHECK(lo <= hi, "shard pattern ", whole, ": {", body, "} counts down");
    TORCH_CHECK(static_cast<size_t>(hi - lo) < kMaxShards, "shard pattern ", whole,
                " names more than ", kMaxShards, " shards");
    // Zero-padded as written: {000..012} -> 000, 001, ..., 012.
    const size_t width = a.size() > 1 && a[0] == '0' ? a.size() : 0;
    for (int64_t v = lo; v <= hi; ++v) {
      choices.push_back(fmt::format("{:0{}d}", v, width));
    }
  } else {
    TORCH_CHECK(!body.empty(), "shard pattern ", whole, ": empty braces");
    size_t start = 0;
    while (true) {
      const auto comma = body.find(',', start);
      choices.push_back(body.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  for (const auto& c : choices) expand_into(rest, head + c, out, whole);
}

// The first non-empty, non-comment line of a small text file.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  for (int i = 0; i < 100 && std::getline(in, line); ++i) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty() && line[0] != '#') return line;
  }
  return "";
}

std::vector<std::string> shard_paths(const std::string& spec) {
  std::vector<std::string> paths;
  if (spec.find('{') != std::string::npos) {
    paths = expand_braces(spec);
    size_t missing = 0;
    std::string first_missing;
    for (const auto& p : paths) {
      if (!fs::exists(p)) {
        if (missing++ == 0) first_missing = p;
      }
    }
    TORCH_CHECK(missing == 0, "shard pattern ", spec, ": ", missing, " of ", paths.size(),
                " shards not found, the first ", first_missing);
    return paths;
  }
  TORCH_CHECK(fs::exists(spec), "dataset not found: ", spec);
  if (fs::is_directory(spec)) {
    for (const auto& e : fs::directory_iterator(spec)) {
      if (e.is_regular_file() && is_tar_name(e.path().filename().string())) {
        paths.push_back(e.path().string());
      }
    }
    std::sort(paths.begin(), paths.end());
    TORCH_CHECK(!paths.empty(), "no .tar shards in ", spec);
    return paths;
  }
  if (is_tar_name(spec)) return {spec};
  // A list file: one shard path a line, relative ones from the list's folder.
  std::ifstream in(spec);
  std::string line;
  int64_t number = 0;
  const auto base = fs::path(spec).parent_path();
  while (std::getline(in, line)) {
    ++number;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    fs::path p(line);
    if (p.is_relative()) p = base / p;
    TORCH_CHECK(fs::exists(p), spec, ":", number, ": shard not found: ", p.string());
    paths.push_back(p.string());
  }
  TORCH_CHECK(!paths.empty(), "no shard paths in the list ", spec);
  return paths;
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  std::vector<std::string> out;
  expand_into(pattern, "", out, pattern);
  return out;
}

bool is_shard_spec(const std::string& spec) {
  if (spec.find('{') != std::string::npos) return to_lower(spec).find(".tar") != std::string::npos;
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    int64_t tars = 0;
    for (const auto& e : fs::directory_iterator(spec, ec)) {
      const auto name = to_lower(e.path().filename().string());
      if (!e.is_regular_file()) continue;
      if (is_tar_name(name)) ++tars;
      if (ends_with(name, ".jpg") || ends_with(name, ".jpeg") || ends_with(name, ".png")) {
        return false;
      }
    }
    return tars > 0;
  }
  if (!fs::is_regular_file(spec, ec)) return false;
  if (is_tar_name(spec)) return true;
  return is_tar_name(first_line(spec));
}

// ---- Reading ------------------------------------------------------------------------

struct ShardReader::Member {
  std::string key, ext;
  std::vector<uint8_t> data;
};

ShardReader::ShardReader(const std::string& path) : path_(path) {
  ar_ = archive_read_new();
  archive_read_support_format_tar(ar_);
  archive_read_support_filter_all(ar_);
  if (archive_read_open_filename(ar_, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    damage_ = archive_error_string(ar_) ? archive_error_string(ar_) : "cannot open";
    done_ = true;
  }
}

ShardReader::~ShardReader() {
  if (ar_ != nullptr) archive_read_free(ar_);
}

bool ShardReader::read_member(Member& m, bool read_data) {
  while (true) {
    struct archive_entry* entry = nullptr;
    damaged_key_.clear();
    const int r = archive_read_next_header(ar_, &entry);
    if (r == ARCHIVE_EOF) return false;
    if (r < ARCHIVE_WARN) {
      const char* why = archive_error_string(ar_);
      damage_ = why ? why : "damaged tar header";
      return false;
    }
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    // WebDataset's rule: the key is the path up to the first dot of the
    // file name; the rest is the member's extension.
    const auto slash = name.rfind('/');
    const auto dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos || dot == 0 || (slash != std::string::npos && dot == slash + 1)) {
      ++ignored_;
      if (archive_read_data_skip(ar_) < ARCHIVE_WARN) {
        damage_ = archive_error_string(ar_) ? archive_error_string(ar_) : "damaged member";
        return false;
      }
      continue;
    }
    m.key = name.substr(0, dot);
    m.ext = to_lower(name.substr(dot + 1));
    m.data.clear();
    damaged_key_ = m.key;  // until its data is through
    const bool wanted =
        read_data && (is_image_ext(m.ext) || m.ext == "cls" || m.ext == "json");
    if (wanted) {
      const auto size = archive_entry_size(entry);
      m.data.resize(static_cast<size_t>(std::max<int64_t>(size, 0)));
      size_t got = 0;
      while (got < m.data.size()) {
        const auto n = archive_read_data(ar_, m.data.data() + got, m.data.size() - got);
        if (n < 0) {
          damage_ = fmt::format("{} (in {})", archive_error_string(ar_) ? archive_error_string(ar_)
                                                                      : "read error",
                                name);
          return false;
        }
        if (n == 0) {
          damage_ = fmt::format("truncated tar archive (in {})", name);
          return false;
        }
        got += static_cast<size_t>(n);
      }
    } else if (archive_read_data_skip(ar_) < ARCHIVE_WARN) {
      damage_ = fmt::format("{} (in {})", archive_error_string(ar_) ? archive_error_string(ar_)
                                                                  : "damaged member",
                            name);
      return false;
    }
    damaged_key_.clear();
    return true;
  }
}

bool ShardReader::next(ShardSample& s, bool read_data) {
  while (!done_) {
    std::unique_ptr<Member> m = std::move(pending_);
    if (!m) {
      m = std::make_unique<Member>();
      if (!read_member(*m, read_data)) {
        done_ = true;
        return false;
      }
    }
    s.shard = path_;
    s.key = m->key;
    s.image_ext.clear();
    s.image.clear();
    s.label = -1;
    s.label_error.clear();
    bool has_image = false, has_label = false;
    while (true) {
      if (is_image_ext(m->ext) && !has_image) {
        has_image = true;
        s.image_ext = m->ext;
        s.image = std::move(m->data);
      } else if ((m->ext == "cls" || m->ext == "json") && !has_label) {
        has_label = true;
        if (read_data) {
          const std::string text(m->data.begin(), m->data.end());
          try {
            if (m->ext == "cls") {
              size_t used = 0;
              s.label = std::stoll(text, &used);
              for (size_t i = used; i < text.size(); ++i) {
                TORCH_CHECK(std::isspace(static_cast<unsigned char>(text[i])), "not an integer");
              }
            } else {
              const auto j = nlohmann::json::parse(text);
              const auto& v = j.contains("label") ? j.at("label") : j.at("cls");
              s.label = v.get<int64_t>();
            }
            TORCH_CHECK(s.label >= 0, "negative");
          } catch (const std::exception&) {
            s.label = -1;
            s.label_error = fmt::format("{}:{}.{}: expected a class index >= 0, got '{}'",
                                        path_, m->key, m->ext, text.substr(0, 40));
          }
        } else {
          s.label = 0;  // present; its value is not read when counting
        }
      } else {
        ++ignored_;
      }
      auto nm = std::make_unique<Member>();
      if (!read_member(*nm, read_data)) {
        done_ = true;
        // Damage drops the sample it cut; a clean end, or damage inside the
        // next sample's first member, completes this one. Damage to a
        // header could have cut this sample: it is dropped.
        if (!damage_.empty() && (damaged_key_.empty() || damaged_key_ == s.key)) return false;
        break;
      }
      if (nm->key != s.key) {
        pending_ = std::move(nm);
        break;
      }
      m = std::move(nm);
    }
    if (has_image) return true;
    // A sample without an image (a label alone) is passed over.
  }
  return false;
}

ShardList open_shards(const std::string& spec, bool strict) {
  const auto t0 = std::chrono::steady_clock::now();
  ShardList list;
  list.spec = spec;
  for (const auto& path : shard_paths(spec)) {
    Shard shard;
    shard.path = path;
    std::error_code ec;
    shard.bytes = static_cast<int64_t>(fs::file_size(path, ec));
    ShardReader reader(path);
    ShardSample s;
    while (reader.next(s, /*read_data=*/false)) {
      ++shard.samples;
      if (s.label >= 0) ++list.labelled;
    }
    list.ignored_members += reader.ignored_members();
    if (!reader.damage().empty()) {
      TORCH_CHECK(!strict, "--strict-data: shard ", path, " is damaged after ", shard.samples,
                  " samples: ", reader.damage());
      list.damaged.push_back(fmt::format("{} (after {} samples: {})", path, shard.samples,
                                         reader.damage()));
    }
    list.samples += shard.samples;
    list.shards.push_back(std::move(shard));
  }
  list.scan_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return list;
}

// ---- Writing ------------------------------------------------------------------------

ShardLimit parse_shard_size(const std::string& text) {
  ShardLimit l;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  TORCH_CHECK(used > 0 && v > 0, "--shard-size: expected samples (10000) or bytes with a unit "
              "(256MB, 1GB), got '", text, "'");
  if (unit.empty()) {
    TORCH_CHECK(v == std::floor(v), "--shard-size: expected a whole number of samples, got '",
                text, "'");
    l.samples = static_cast<int64_t>(v);
    return l;
  }
  const auto u = to_lower(unit);
  double scale = 0;
  if (u == "b") scale = 1;
  if (u == "kb" || u == "k") scale = 1e3;
  if (u == "mb" || u == "m") scale = 1e6;
  if (u == "gb" || u == "g") scale = 1e9;
  if (u == "kib") scale = 1024.0;
  if (u == "mib") scale = 1024.0 * 1024;
  if (u == "gib") scale = 1024.0 * 1024 * 1024;
  TORCH_CHECK(scale > 0, "--shard-size: unknown unit '", unit, "' in '", text,
              "' (B, kB, MB, GB, KiB, MiB, GiB)");
  l.samples = 0;
  l.bytes = static_cast<int64_t>(v * scale);
  TORCH_CHECK(l.bytes >= 1024, "--shard-size: expected at least 1 kB, got '", text, "'");
  return l;
}

ShardingResult write_dataset_shards(const ImageSet& set, const std::string& dir,
                                    const std::string& prefix, ShardLimit limit) {
  require_indexed(set, "shard");
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    TORCH_CHECK(!(name.rfind(prefix + "-", 0) == 0 && is_tar_name(name)), dir,
                " already holds shards (", name, "); choose another folder or remove them");
  }
  ShardingResult r;
  ShardWriter writer(dir, prefix, limit);
  const int64_t n = set.size();
  const int digits = std::max<int>(6, static_cast<int>(std::to_string(n).size()));
  int64_t next_report = n / 10;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<uint8_t> bytes;
    std::string ext = "png";
    if (set.on_disk()) {
      const auto& path = set.files[static_cast<size_t>(i)];
      try {
        bytes = read_file(path);
        read_image_info(bytes, path);
      } catch (const c10::Error& e) {
        log_warn("skipping unreadable image: ", e.what_without_backtrace());
        ++r.skipped;
        continue;
      }
      ext = to_lower(fs::path(path).extension().string().substr(1));
    } else {
      const auto hwc = set.images[i].permute({1, 2, 0}).contiguous();
      bytes = encode_png(hwc.data_ptr<uint8_t>(), hwc.size(0), hwc.size(1), hwc.size(2));
    }
    const int64_t label = set.labelled() ? set.labels[i].item<int64_t>() : -1;
    writer.add(fmt::format("{:0{}d}", i, digits), ext, bytes, label);
    ++r.samples;
    r.labelled += label >= 0 ? 1 : 0;
    r.bytes += static_cast<int64_t>(bytes.size());
    if (i + 1 == next_report && n >= 1000) {
      log_info("shard: ", i + 1, " of ", n, " images written");
      next_report += n / 10;
    }
  }
  r.shards = writer.finish();
  r.pattern = writer.pattern();
  TORCH_CHECK(r.samples > 0, "no readable image in ", set.description, "; nothing written");
  return r;
}

ShardWriter::ShardWriter(std::string dir, std::string prefix, ShardLimit limit)
    : dir_(std::move(dir)), prefix_(std::move(prefix)), limit_(limit) {}

ShardWriter::~ShardWriter() {
  if (ar_ != nullptr) {
    archive_write_free(ar_);
    std::error_code ec;
    fs::remove(tmp_, ec);  // an unfinished shard is not left behind
  }
}

void ShardWriter::open_next() {
  final_ = (fs::path(dir_) / fmt::format("{}-{:06d}.tar", prefix_, written_.size())).string();
  tmp_ = final_ + ".tmp";
  ar_ = archive_write_new();
  archive_write_set_format_ustar(ar_);
  TORCH_CHECK(archive_write_open_filename(ar_, tmp_.c_str()) == ARCHIVE_OK, "cannot write ",
              tmp_, ": ", archive_error_string(ar_));
  in_shard_ = 0;
  bytes_in_shard_ = 0;
}

void ShardWriter::close_current() {
  if (ar_ == nullptr) return;
  const int r = archive_write_close(ar_);
  const std::string why = archive_error_string(ar_) ? archive_error_string(ar_) : "";
  archive_write_free(ar_);
  ar_ = nullptr;
  TORCH_CHECK(r == ARCHIVE_OK, "cannot finish ", tmp_, ": ", why);
  fs::rename(tmp_, final_);
  written_.push_back(final_);
}

void ShardWriter::add(const std::string& key, const std::string& ext,
                      const std::vector<uint8_t>& image, int64_t label) {
  const std::string cls = label >= 0 ? std::to_string(label) : "";
  auto tar_bytes = [](size_t n) { return static_cast<int64_t>(512 + (n + 511) / 512 * 512); };
  const int64_t sample_bytes = tar_bytes(image.size()) + (label >= 0 ? tar_bytes(cls.size()) : 0);
  if (ar_ != nullptr && in_shard_ > 0 &&
      ((limit_.samples > 0 && in_shard_ >= limit_.samples) ||
       (limit_.bytes > 0 && bytes_in_shard_ + sample_bytes + 1024 > limit_.bytes))) {
    close_current();
  }
  if (ar_ == nullptr) open_next();
  auto member = [&](const std::string& name, const void* data, size_t size) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);  // the same input gives the same bytes
    const int r = archive_write_header(ar_, e);
    archive_entry_free(e);
    TORCH_CHECK(r == ARCHIVE_OK, "cannot write ", name, " into ", tmp_, ": ",
                archive_error_string(ar_));
    if (size > 0) {
      TORCH_CHECK(archive_write_data(ar_, data, size) == static_cast<la_ssize_t>(size),
                  "cannot write ", name, " into ", tmp_, ": ", archive_error_string(ar_));
    }
  };
  member(key + "." + ext, image.data(), image.size());
  if (label >= 0) member(key + ".cls", cls.data(), cls.size());
  ++in_shard_;
  bytes_in_shard_ += sample_bytes;
}

std::vector<std::string> ShardWriter::finish() {
  close_current();
  return written_;
}

std::string ShardWriter::pattern() const {
  if (written_.empty()) return "";
  if (written_.size() == 1) return written_.front();
  return (fs::path(dir_) / fmt::format("{}-{{{:06d}..{:06d}}}.tar", prefix_, 0,
                                       written_.size() - 1))
      .string();
}

}  // namespace moco::data
