#include "io/torch_pickle.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>

namespace moco::io {

namespace {

namespace fs = std::filesystem;

// Python objects the unpickler can meet besides plain values: a class or
// function named by GLOBAL, a storage named by a persistent id.
struct Global {
  std::string module, name;
  std::string full() const { return module + "." + name; }
};

c10::ScalarType storage_dtype(const std::string& name, const std::string& file) {
  static const std::map<std::string, c10::ScalarType> table = {
      {"FloatStorage", at::kFloat},   {"DoubleStorage", at::kDouble},
      {"HalfStorage", at::kHalf},     {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},     {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},   {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},     {"BoolStorage", at::kBool},
      {"UntypedStorage", at::kByte},  {"ComplexFloatStorage", at::kComplexFloat},
      {"ComplexDoubleStorage", at::kComplexDouble}};
  auto it = table.find(name);
  TORCH_CHECK(it != table.end(), "unsupported storage type torch.", name,
              " in ", file);
  return it->second;
}

// A value on the unpickler's stack: an IValue, or a Python global / marker.
struct Item {
  enum Kind { kValue, kGlobal, kMark } kind = kValue;
  c10::IValue value;
  Global global;
};

class Unpickler {
 public:
  // `storage(key, dtype, numel)` returns the storage's bytes as a 1-D tensor
  // of that dtype.
  Unpickler(const char* data, size_t size, std::string file,
            std::function<at::Tensor(const std::string&, c10::ScalarType,
                                     int64_t)> storage)
      : p_(data), end_(data + size), file_(std::move(file)),
        storage_(std::move(storage)) {}

  c10::IValue run();
  size_t consumed(const char* start) const { return p_ - start; }

 private:
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(*p_++);
  }
  template <typename T>
  T le() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string bytes(size_t n) {
    need(n);
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  std::string line() {
    const char* nl = static_cast<const char*>(std::memchr(p_, '\n', end_ - p_));
    TORCH_CHECK(nl, "truncated pickle in ", file_);
    std::string s(p_, nl);
    p_ = nl + 1;
    return s;
  }
  void need(size_t n) const {
    TORCH_CHECK(static_cast<size_t>(end_ - p_) >= n,
                "truncated pickle (file cut short?) in ", file_);
  }
  Item pop() {
    TORCH_CHECK(!stack_.empty(), "malformed pickle (stack underflow) in ", file_);
    Item it = std::move(stack_.back());
    stack_.pop_back();
    return it;
  }
  c10::IValue pop_value() {
    Item it = pop();
    TORCH_CHECK(it.kind == Item::kValue, "unsupported Python object ",
                it.global.full(), " in ", file_);
    return it.value;
  }
  // The items above the topmost MARK, removing them and the mark.
  std::vector<Item> pop_to_mark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1].kind != Item::kMark) --m;
    TORCH_CHECK(m > 0, "malformed pickle (no MARK) in ", file_);
    std::vector<Item> items(std::make_move_iterator(stack_.begin() + m),
                            std::make_move_iterator(stack_.end()));
    stack_.resize(m - 1);
    return items;
  }
  c10::IValue value_of(Item& it) {
    TORCH_CHECK(it.kind == Item::kValue, "unsupported Python object ",
                it.global.full(), " in ", file_);
    return it.value;
  }
  void push(c10::IValue v) {
    Item it;
    it.value = std::move(v);
    stack_.push_back(std::move(it));
  }
  static c10::impl::GenericDict new_dict() {
    return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
  }
  static c10::impl::GenericList new_list() {
    return c10::impl::GenericList(c10::AnyType::get());
  }
  void append(c10::IValue& list, std::vector<Item>& items) {
    TORCH_CHECK(list.isList(), "malformed pickle (APPEND to a non-list) in ",
                file_);
    auto l = list.toList();
    for (auto& it : items) l.push_back(value_of(it));
  }
  void set_items(c10::IValue& dict, std::vector<Item>& items) {
    TORCH_CHECK(dict.isGenericDict() && items.size() % 2 == 0,
                "malformed pickle (SETITEMS) in ", file_);
    auto d = dict.toGenericDict();
    for (size_t i = 0; i < items.size(); i += 2) {
      const auto key = value_of(items[i]);
      // What c10's dict can hash (it throws std::runtime_error otherwise);
      // torch.save's own dicts have str or int keys.
      TORCH_CHECK(key.isString() || key.isInt() || key.isDouble() || key.isBool(),
                  "unsupported pickle (a dict key of type ", key.tagKind(), ") in ",
                  file_);
      d.insert_or_assign(key, value_of(items[i + 1]));
    }
  }
  c10::IValue call(const Global& g, std::vector<c10::IValue> args);
  c10::IValue persistent_load(const c10::IValue& pid);

  const char* p_;
  const char* end_;
  std::string file_;
  std::function<at::Tensor(const std::string&, c10::ScalarType, int64_t)>
      storage_;
  // Nesting is capped because IValues are destroyed recursively: a pickle
  // nesting 10^6 tuples would overflow the C++ stack when the result (or
  // the stack, on an error) is freed. Python's own pickler stops at its
  // recursion limit (1000), so no torch.save file is deeper than this.
  static constexpr int kMaxDepth = 1000;
  static bool is_container(const c10::IValue& v) {
    return v.isList() || v.isGenericDict() || v.isTuple();
  }
  int depth_of(const c10::IValue& v) const {
    if (!is_container(v)) return 0;
    auto it = depth_.find(v.internalToPointer());
    return it == depth_.end() ? 1 : it->second;
  }
  // Registers a new container (an address may be reused after a free, so
  // whatever was recorded for it before is forgotten) and pushes it.
  void push_container(c10::IValue v, int depth) {
    TORCH_CHECK(depth <= kMaxDepth, "malformed pickle (nested deeper than ",
                kMaxDepth, " levels) in ", file_);
    depth_[v.internalToPointer()] = depth;
    inside_.erase(v.internalToPointer());
    push(std::move(v));
  }
  // Children put into a container: remembered as "inside", so that changing
  // them later (which would make a stale depth, or a reference cycle that
  // no reader could walk) is refused.
  int adopt(const c10::IValue& child) {
    if (is_container(child)) inside_.insert(child.internalToPointer());
    return depth_of(child);
  }
  // A list or dict on the stack about to get `items`: its new depth.
  void grow(const c10::IValue& target, const std::vector<Item>& items) {
    if (!is_container(target)) return;  // append/set_items report it
    const void* t = target.internalToPointer();
    TORCH_CHECK(!inside_.count(t),
                "unsupported pickle (a list or dict changed after it was put "
                "into another: a recursive structure?) in ",
                file_);
    int d = depth_of(target);
    for (const auto& it : items) {
      TORCH_CHECK(!is_container(it.value) || it.value.internalToPointer() != t,
                  "unsupported pickle (a list or dict containing itself) in ",
                  file_);
      d = std::max(d, 1 + adopt(it.value));
    }
    TORCH_CHECK(d <= kMaxDepth, "malformed pickle (nested deeper than ",
                kMaxDepth, " levels) in ", file_);
    depth_[t] = d;
  }
  Item& top() {
    TORCH_CHECK(!stack_.empty(), "malformed pickle (stack underflow) in ",
                file_);
    return stack_.back();
  }
  void push_tuple(std::vector<c10::IValue> v) {
    int d = 1;
    for (const auto& e : v) d = std::max(d, 1 + adopt(e));
    push_container(c10::ivalue::Tuple::create(std::move(v)), d);
  }
  int64_t to_int(const c10::IValue& v, const char* what) const {
    TORCH_CHECK(v.isInt(), "malformed pickle (", what,
                " is not an integer) in ", file_);
    return v.toInt();
  }
  std::vector<int64_t> int_tuple(const c10::IValue& v, const char* what) const {
    TORCH_CHECK(v.isTuple(), "malformed tensor (", what, " is not a tuple) in ",
                file_);
    std::vector<int64_t> out;
    for (const auto& e : v.toTupleRef().elements()) {
      out.push_back(to_int(e, what));
      TORCH_CHECK(out.back() >= 0, "malformed tensor (negative ", what, ") in ",
                  file_);
    }
    return out;
  }

  std::vector<Item> stack_;
  std::map<int64_t, Item> memo_;
  std::map<std::string, at::Tensor> storages_;
  std::unordered_map<const void*, int> depth_;
  std::unordered_set<const void*> inside_;
};

c10::IValue Unpickler::persistent_load(const c10::IValue& pid) {
  // ('storage', StorageType, key, location, numel[, view_metadata])
  TORCH_CHECK(pid.isTuple(), "unsupported persistent id in ", file_);
  // A vector copy: GCC mis-reads TupleElements' small inline array as
  // bounding e[4] (-Warray-bounds).
  const std::vector<c10::IValue> e = pid.toTupleRef().elements().vec();
  TORCH_CHECK(e.size() >= 5 && e[0].isString() &&
                  e[0].toStringRef() == "storage" && e[1].isString() &&
                  e[2].isString() && e[4].isInt(),
              "unsupported persistent id in ", file_);
  TORCH_CHECK(e[4].toInt() >= 0, "malformed storage (", e[4].toInt(),
              " elements) in ", file_);
  const std::string key = e[2].toStringRef();
  TORCH_CHECK(e.size() < 6 || e[5].isNone(),
              "storage views (legacy torch.save) are not supported: ", file_);
  auto it = storages_.find(key);
  if (it == storages_.end()) {
    const auto dtype = storage_dtype(e[1].toStringRef(), file_);
    it = storages_.emplace(key, storage_(key, dtype, e[4].toInt())).first;
  }
  return it->second;
}

c10::IValue Unpickler::call(const Global& g, std::vector<c10::IValue> args) {
  const std::string name = g.full();
  if (name == "collections.OrderedDict") {
    c10::IValue d = new_dict();
    depth_[d.internalToPointer()] = 1;  // a fresh address: forget a freed one's
    inside_.erase(d.internalToPointer());
    return d;
  }
  if (name == "torch._utils._rebuild_tensor_v2" ||
      name == "torch._utils._rebuild_tensor") {
    // (storage, storage_offset, size, stride, ...)
    TORCH_CHECK(args.size() >= 4 && args[0].isTensor(),
                "malformed tensor in ", file_);
    auto storage = args[0].toTensor();
    const int64_t offset = to_int(args[1], "storage offset");
    const auto size = int_tuple(args[2], "size");
    const auto stride = int_tuple(args[3], "stride");
    TORCH_CHECK(offset >= 0 && size.size() == stride.size(),
                "malformed tensor (size ", size.size(), " dims, stride ",
                stride.size(), " dims, offset ", offset, ") in ", file_);
    // The last element's index, offset + sum (size-1)*stride, must lie in
    // the storage; computed without overflow for hostile values.
    bool empty = false;
    for (int64_t n : size) empty = empty || n == 0;
    if (!empty) {
      int64_t last = offset;
      for (size_t i = 0; i < size.size(); ++i) {
        int64_t step = 0;
        TORCH_CHECK(!__builtin_mul_overflow(size[i] - 1, stride[i], &step) &&
                        !__builtin_add_overflow(last, step, &last),
                    "malformed tensor (size/stride overflow) in ", file_);
      }
      TORCH_CHECK(last < storage.numel(), "tensor larger than its storage in ",
                  file_, " (truncated file?)");
    }
    return storage.as_strided(size, stride, offset);
  }
  if (name == "torch._utils._rebuild_parameter") {
    TORCH_CHECK(!args.empty() && args[0].isTensor(), "malformed parameter in ",
                file_);
    return args[0];
  }
  // LibTorch's own pickler (torch::pickle_save) wraps typed lists and dicts.
  if (name.rfind("torch.jit._pickle.build_", 0) == 0 ||
      name == "torch.jit._pickle.restore_type_tag") {
    TORCH_CHECK(!args.empty(), "malformed pickle in ", file_);
    return args[0];
  }
  if (name == "torch.device") {
    return c10::IValue(args.empty() || !args[0].isString()
                           ? std::string("cpu")
                           : args[0].toStringRef());
  }
  TORCH_CHECK(false, "unsupported Python object ", name, " in ", file_,
              ": only tensors, dicts, lists, tuples, numbers and strings ",
              "can be read");
}

// Long by design: one case per pickle opcode, as the protocol lists them;
// each case is a few lines and reads on its own.
c10::IValue Unpickler::run() {
  while (true) {
    const uint8_t op = u8();
    switch (op) {
      case 0x80: u8(); break;                     // PROTO
      case 0x95: le<uint64_t>(); break;           // FRAME
      case '.': return pop_value();               // STOP
      case '(': {                                 // MARK
        Item m;
        m.kind = Item::kMark;
        stack_.push_back(std::move(m));
        break;
      }
      case '}':
        push_container(new_dict(), 1);
        break;  // EMPTY_DICT
      case ']':
        push_container(new_list(), 1);
        break;  // EMPTY_LIST
      case ')':
        push_tuple({});
        break;                                     // EMPTY_TUPLE
      case 'N': push(c10::IValue()); break;        // NONE
      case 0x88: push(true); break;                // NEWTRUE
      case 0x89: push(false); break;               // NEWFALSE
      case 'J': push(static_cast<int64_t>(le<int32_t>())); break;   // BININT
      case 'K': push(static_cast<int64_t>(u8())); break;            // BININT1
      case 'M': push(static_cast<int64_t>(le<uint16_t>())); break;  // BININT2
      case 0x8a: {                                 // LONG1
        const size_t n = u8();
        const std::string b = bytes(n);
        if (n > 8) {
          // Only the legacy format's magic number is this long; keep its
          // bytes (little-endian, hex) for the caller to compare.
          static const char* hex = "0123456789abcdef";
          std::string s = "long:";
          for (char ch : b) {
            s += hex[static_cast<uint8_t>(ch) >> 4];
            s += hex[static_cast<uint8_t>(ch) & 15];
          }
          push(s);
          break;
        }
        int64_t v = 0;
        for (size_t i = 0; i < n; ++i) {
          v |= static_cast<int64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
        }
        if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) {
          v -= int64_t{1} << (8 * n);  // two's complement of n bytes
        }
        push(v);
        break;
      }
      case 'G': {                                  // BINFLOAT (big-endian)
        const std::string b = bytes(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(b[i]);
        double d;
        std::memcpy(&d, &bits, 8);
        push(d);
        break;
      }
      case 'X': push(bytes(le<uint32_t>())); break;   // BINUNICODE
      case 0x8c: push(bytes(u8())); break;            // SHORT_BINUNICODE
      case 'T': push(bytes(le<uint32_t>())); break;   // BINSTRING
      case 'U': push(bytes(u8())); break;             // SHORT_BINSTRING
      case 'B': push(bytes(le<uint32_t>())); break;   // BINBYTES
      case 'C': push(bytes(u8())); break;             // SHORT_BINBYTES
      case 'q': {                                     // BINPUT
        const int64_t k = u8();
        memo_[k] = top();
        break;
      }
      case 'r': {  // LONG_BINPUT
        const int64_t k = le<uint32_t>();
        memo_[k] = top();
        break;
      }
      case 0x94: {                                    // MEMOIZE
        const int64_t k = static_cast<int64_t>(memo_.size());
        memo_[k] = top();
        break;
      }
      case 'h':
      case 'j': {                                     // BINGET, LONG_BINGET
        const int64_t k = op == 'h' ? u8() : le<uint32_t>();
        auto it = memo_.find(k);
        TORCH_CHECK(it != memo_.end(), "malformed pickle (memo ", k, ") in ",
                    file_);
        stack_.push_back(it->second);
        break;
      }
      case 't': {                                     // TUPLE
        auto items = pop_to_mark();
        std::vector<c10::IValue> v;
        for (auto& it : items) v.push_back(value_of(it));
        push_tuple(std::move(v));
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {                                    // TUPLE1..3
        const size_t n = op - 0x84;
        std::vector<c10::IValue> v(n);
        for (size_t i = n; i-- > 0;) v[i] = pop_value();
        push_tuple(std::move(v));
        break;
      }
      case 'l': {                                     // LIST
        auto items = pop_to_mark();
        c10::IValue l = new_list();
        depth_[l.internalToPointer()] = 1;
        inside_.erase(l.internalToPointer());
        grow(l, items);
        append(l, items);
        push(l);
        break;
      }
      case 'd': {                                     // DICT
        auto items = pop_to_mark();
        c10::IValue d = new_dict();
        depth_[d.internalToPointer()] = 1;
        inside_.erase(d.internalToPointer());
        grow(d, items);
        set_items(d, items);
        push(d);
        break;
      }
      case 'a': {                                     // APPEND
        std::vector<Item> items;
        items.push_back(pop());
        grow(top().value, items);
        append(top().value, items);
        break;
      }
      case 'e': {                                     // APPENDS
        auto items = pop_to_mark();
        grow(top().value, items);
        append(top().value, items);
        break;
      }
      case 's': {                                     // SETITEM
        std::vector<Item> items(2);
        items[1] = pop();
        items[0] = pop();
        grow(top().value, items);
        set_items(top().value, items);
        break;
      }
      case 'u': {                                     // SETITEMS
        auto items = pop_to_mark();
        grow(top().value, items);
        set_items(top().value, items);
        break;
      }
      case 'c': {                                     // GLOBAL
        Item g;
        g.kind = Item::kGlobal;
        g.global.module = line();
        g.global.name = line();
        // Storage classes are only ever arguments of a persistent id.
        if (g.global.module == "torch" &&
            g.global.name.size() > 7 &&
            g.global.name.compare(g.global.name.size() - 7, 7, "Storage") == 0) {
          push(g.global.name);
        } else {
          stack_.push_back(std::move(g));
        }
        break;
      }
      case 0x93: {                                    // STACK_GLOBAL
        Item g;
        g.kind = Item::kGlobal;
        const auto name = pop_value();
        const auto module = pop_value();
        TORCH_CHECK(name.isString() && module.isString(),
                    "malformed pickle (STACK_GLOBAL) in ", file_);
        g.global.name = name.toStringRef();
        g.global.module = module.toStringRef();
        stack_.push_back(std::move(g));
        break;
      }
      case 'R':                                       // REDUCE
      case 0x81: {                                    // NEWOBJ
        auto args = pop_value();
        Item callable = pop();
        TORCH_CHECK(callable.kind == Item::kGlobal,
                    "malformed pickle (REDUCE) in ", file_);
        std::vector<c10::IValue> a;
        if (args.isTuple()) a = args.toTupleRef().elements().vec();
        auto result = call(callable.global, std::move(a));
        if (is_container(result)) {
          // A new OrderedDict, or an argument handed back unwrapped (it is
          // no longer inside the discarded argument tuple).
          const int d = depth_of(result);
          push_container(std::move(result), d);
        } else {
          push(std::move(result));
        }
        break;
      }
      case 'b': {                                     // BUILD
        auto state = pop_value();
        top();
        // torch.save's tensors and OrderedDicts take no state worth
        // keeping (backward hooks, an empty dict); anything else is an
        // object we do not read.
        TORCH_CHECK(stack_.back().kind == Item::kValue,
                    "unsupported Python object in ", file_);
        break;
      }
      case 'Q': {                                     // BINPERSID
        auto pid = pop_value();
        push(persistent_load(pid));
        break;
      }
      default:
        TORCH_CHECK(false, "unsupported pickle opcode 0x", std::hex,
                    static_cast<int>(op), " in ", file_,
                    " (not a torch.save file?)");
    }
  }
}

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), "cannot read ", path);
  return std::vector<char>((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
}

at::Tensor bytes_to_tensor(const char* data, size_t nbytes,
                           c10::ScalarType dtype, int64_t numel,
                           const std::string& what) {
  const size_t esize = c10::elementSize(dtype);
  TORCH_CHECK(numel >= 0 && static_cast<size_t>(numel) <= nbytes / esize,
              "storage ", what, " holds ", nbytes, " bytes, the pickle says ",
              numel, " elements of ", esize, " bytes (truncated file?)");
  const size_t want = static_cast<size_t>(numel) * esize;
  auto t = at::empty({numel}, at::TensorOptions().dtype(dtype));
  std::memcpy(t.data_ptr(), data, want);
  return t;
}

c10::IValue read_zip(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  at::DataPtr pkl;
  size_t pkl_size = 0;
  std::tie(pkl, pkl_size) = reader.getRecord("data.pkl");
  Unpickler u(static_cast<const char*>(pkl.get()), pkl_size, path,
              [&](const std::string& key, c10::ScalarType dtype, int64_t numel) {
                at::DataPtr data;
                size_t size = 0;
                std::tie(data, size) = reader.getRecord("data/" + key);
                return bytes_to_tensor(static_cast<const char*>(data.get()),
                                       size, dtype, numel, key);
              });
  return u.run();
}

// torch.save(..., _use_new_zipfile_serialization=False) and PyTorch < 1.6:
// pickles of the magic number, the protocol version and the system info,
// then the object, then the list of storage keys, then each storage as an
// int64 element count and its raw bytes, in that list's order.
c10::IValue read_legacy(const std::string& path, const std::vector<char>& file) {
  const char* base = file.data();
  size_t off = 0;
  auto next_pickle = [&](std::function<at::Tensor(const std::string&,
                                                  c10::ScalarType, int64_t)>
                             storage) {
    Unpickler u(base + off, file.size() - off, path, std::move(storage));
    auto v = u.run();
    off += u.consumed(base + off);
    return v;
  };
  auto no_storage = [&](const std::string&, c10::ScalarType, int64_t) -> at::Tensor {
    TORCH_CHECK(false, "malformed legacy torch.save header in ", path);
  };
  const auto magic = next_pickle(no_storage);
  // torch.serialization.MAGIC_NUMBER, 0x1950a86a20f9469cfc6c.
  TORCH_CHECK(magic.isString() &&
                  magic.toStringRef() == "long:6cfc9c46f9206aa85019",
              "not a torch.save file (bad magic number): ", path);
  next_pickle(no_storage);  // protocol version
  next_pickle(no_storage);  // sys info
  // Storages are read after the object; keep empty ones to fill in place.
  std::map<std::string, std::pair<c10::ScalarType, at::Tensor>> pending;
  auto obj = next_pickle(
      [&](const std::string& key, c10::ScalarType dtype, int64_t numel) {
        // Allocated before the bytes are read: bounded by the file's size
        // first.
        TORCH_CHECK(numel >= 0 && static_cast<size_t>(numel) <=
                                      file.size() / c10::elementSize(dtype),
                    "storage ", key, " claims ", numel,
                    " elements, more than the file holds: ", path);
        auto t = at::empty({numel}, at::TensorOptions().dtype(dtype));
        pending[key] = {dtype, t};
        return t;
      });
  const auto keys = next_pickle(no_storage);
  TORCH_CHECK(keys.isList(), "malformed legacy torch.save file: ", path);
  for (const auto& k : keys.toList()) {
    const c10::IValue kv = k;
    TORCH_CHECK(kv.isString(), "malformed legacy torch.save file: ", path);
    const std::string key = kv.toStringRef();
    auto it = pending.find(key);
    TORCH_CHECK(it != pending.end(), "malformed legacy torch.save file: ", path);
    TORCH_CHECK(file.size() - off >= 8, "truncated torch.save file: ", path);
    int64_t numel = 0;
    std::memcpy(&numel, base + off, 8);
    off += 8;
    auto& t = it->second.second;
    TORCH_CHECK(numel == t.numel(), "storage ", key, " size mismatch in ", path);
    const size_t nbytes = static_cast<size_t>(numel) * t.element_size();
    TORCH_CHECK(file.size() - off >= nbytes, "truncated torch.save file: ", path);
    std::memcpy(t.data_ptr(), base + off, nbytes);
    off += nbytes;
  }
  return obj;
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  TORCH_CHECK(fs::exists(path), "checkpoint not found: ", path);
  TORCH_CHECK(fs::is_regular_file(path), "expected a checkpoint file, got ",
              path);
  const auto size = fs::file_size(path);
  TORCH_CHECK(size > 0, "checkpoint is empty (0 bytes): ", path);
  try {
    std::ifstream in(path, std::ios::binary);
    char head[2] = {0, 0};
    in.read(head, 2);
    if (head[0] == 'P' && head[1] == 'K') return read_zip(path);
    const auto file = slurp(path);
    TORCH_CHECK(static_cast<uint8_t>(file[0]) == 0x80,
                "not a torch.save file (neither a zip nor a pickle): ", path);
    return read_legacy(path, file);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    if (msg.find(path) != std::string::npos) throw;
    TORCH_CHECK(false, "cannot read checkpoint ", path,
                " (truncated, or not a torch.save file): ", msg);
  } catch (const std::exception& e) {
    // LibTorch's containers and zip reader throw plain exceptions on some
    // malformed input; they become the same error naming the file.
    TORCH_CHECK(false, "cannot read checkpoint ", path,
                " (damaged, or not a torch.save file): ", e.what());
  }
}

}  // namespace moco::io
