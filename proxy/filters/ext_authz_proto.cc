// Envoy ext_authz messages by hand (ext_authz_proto.h).
#include "proxy/filters/ext_authz_proto.h"

#include <cstring>

namespace gantry::filters::ext_authz {

// ---- writer

void ProtoWriter::raw_varint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void ProtoWriter::varint(uint32_t field, uint64_t v) {
  raw_varint(uint64_t{field} << 3);
  raw_varint(v);
}

void ProtoWriter::bytes(uint32_t field, std::string_view v) {
  raw_varint((uint64_t{field} << 3) | 2);
  raw_varint(v.size());
  out_.append(v);
}

// A nested message's length is not known until it ends: begin() leaves five
// bytes (the longest varint of a 32-bit length), end() writes the length
// there and closes the gap.
size_t ProtoWriter::begin(uint32_t field) {
  raw_varint((uint64_t{field} << 3) | 2);
  const size_t mark = out_.size();
  out_.append(5, '\0');
  return mark;
}

void ProtoWriter::end(size_t mark) {
  // A length fits 32 bits (five varint bytes at most): a request message
  // holds a body of at most 64 MiB.
  auto v = static_cast<uint32_t>(out_.size() - mark - 5);
  char buf[5];
  size_t n = 0;
  for (; n < 4 && v >= 0x80; ++n) {
    buf[n] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  std::memcpy(out_.data() + mark, buf, n);
  out_.erase(mark + n, 5 - n);
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // the sequence is cut
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

namespace {

void string_field(ProtoWriter& w, uint32_t field, std::string_view v) {
  if (!v.empty()) w.bytes(field, v);
}

void peer(ProtoWriter& w, uint32_t field, std::string_view ip, uint32_t port) {
  if (ip.empty() && port == 0) return;
  size_t p = w.begin(field);
  size_t a = w.begin(1);   // Peer.address
  size_t s = w.begin(1);   // Address.socket_address
  string_field(w, 2, ip);  // SocketAddress.address
  if (port != 0) w.varint(3, port);
  w.end(s);
  w.end(a);
  w.end(p);
}

}  // namespace

std::string encode_check_request(const CheckInput& in) {
  ProtoWriter w;
  size_t attrs = w.begin(1);  // CheckRequest.attributes
  peer(w, 1, in.source_ip, in.source_port);
  peer(w, 2, in.destination_ip, in.destination_port);
  size_t req = w.begin(4);  // AttributeContext.request
  if (in.time_seconds != 0 || in.time_nanos != 0) {
    size_t t = w.begin(1);
    if (in.time_seconds != 0) w.varint(1, static_cast<uint64_t>(in.time_seconds));
    if (in.time_nanos != 0) w.varint(2, static_cast<uint64_t>(static_cast<uint32_t>(in.time_nanos)));
    w.end(t);
  }
  size_t http = w.begin(2);  // Request.http
  string_field(w, 1, in.id);
  string_field(w, 2, in.method);
  for (const auto& [k, v] : in.headers) {  // map entries: {key = 1, value = 2}
    size_t e = w.begin(3);
    string_field(w, 1, k);
    string_field(w, 2, v);
    w.end(e);
  }
  string_field(w, 4, in.path);
  string_field(w, 5, in.host);
  string_field(w, 6, in.scheme);
  string_field(w, 7, in.query);
  if (in.size != 0) w.varint(9, static_cast<uint64_t>(in.size));  // int64: two's complement, 10 bytes for -1
  string_field(w, 10, in.protocol);
  if (in.with_body && !in.body.empty()) {
    if (valid_utf8(in.body))
      w.bytes(11, in.body);
    else
      w.bytes(12, in.body);
  }
  w.end(http);
  w.end(req);
  w.end(attrs);
  return w.take();
}

// ---- reader

namespace {

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool done() const { return pos_ >= in_.size(); }
  // The next field's number and wire type. False at a malformed tag.
  bool tag(uint32_t& field, uint32_t& wire) {
    uint64_t t;
    if (!varint(t)) return false;
    field = static_cast<uint32_t>(t >> 3);
    wire = static_cast<uint32_t>(t & 7);
    return field != 0 && (t >> 3) <= 0x1fffffff;
  }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= in_.size()) return false;
      const auto b = static_cast<unsigned char>(in_[pos_++]);
      if (shift == 63 && b > 1) return false;
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool length_delimited(std::string_view& out) {
    uint64_t n;
    if (!varint(n) || n > in_.size() - pos_) return false;
    out = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }
  // Skips a field of `wire` type (groups are refused).
  bool skip(uint32_t wire) {
    switch (wire) {
      case 0: {
        uint64_t v;
        return varint(v);
      }
      case 1:
        if (in_.size() - pos_ < 8) return false;
        pos_ += 8;
        return true;
      case 2: {
        std::string_view v;
        return length_delimited(v);
      }
      case 5:
        if (in_.size() - pos_ < 4) return false;
        pos_ += 4;
        return true;
      default:
        return false;
    }
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// Runs fn(field, wire, reader) for each field of `msg`; fn handles the
// fields it knows (returning false on malformed data) and leaves the rest
// (returns true without reading: skipped here).
template <typename Fn>
bool each_field(std::string_view msg, Fn&& fn) {
  Reader r(msg);
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.tag(field, wire)) return false;
    bool handled = false;
    if (!fn(field, wire, r, handled)) return false;
    if (!handled && !r.skip(wire)) return false;
  }
  return true;
}

bool read_string(uint32_t wire, Reader& r, std::string& out) {
  std::string_view v;
  if (wire != 2 || !r.length_delimited(v)) return false;
  out.assign(v);
  return true;
}

bool read_header_value_option(std::string_view msg, HeaderOp& op) {
  bool has_append = false, append = false;
  uint64_t action = 0;
  std::string raw;
  bool ok = each_field(msg, [&](uint32_t f, uint32_t wire, Reader& r, bool& handled) {
    if (f == 1) {  // HeaderValue
      handled = true;
      std::string_view hv;
      if (wire != 2 || !r.length_delimited(hv)) return false;
      return each_field(hv, [&](uint32_t hf, uint32_t hw, Reader& hr, bool& hh) {
        if (hf == 1) return hh = true, read_string(hw, hr, op.key);
        if (hf == 2) return hh = true, read_string(hw, hr, op.value);
        if (hf == 3) return hh = true, read_string(hw, hr, raw);
        return true;
      });
    }
    if (f == 2) {  // google.protobuf.BoolValue append
      handled = true;
      std::string_view bv;
      if (wire != 2 || !r.length_delimited(bv)) return false;
      has_append = true;
      return each_field(bv, [&](uint32_t bf, uint32_t bw, Reader& br, bool& bh) {
        if (bf != 1) return true;
        bh = true;
        uint64_t v;
        if (bw != 0 || !br.varint(v)) return false;
        append = v != 0;
        return true;
      });
    }
    if (f == 3) {
      handled = true;
      return wire == 0 && r.varint(action);
    }
    return true;
  });
  if (!ok) return false;
  if (op.value.empty() && !raw.empty()) op.value = std::move(raw);
  if (has_append) {
    op.action = append ? HeaderOp::Action::kAppend : HeaderOp::Action::kOverwrite;
  } else {
    switch (action) {
      case 0: op.action = HeaderOp::Action::kAppend; break;
      case 1: op.action = HeaderOp::Action::kAddIfAbsent; break;
      case 2: op.action = HeaderOp::Action::kOverwrite; break;
      case 3: op.action = HeaderOp::Action::kOverwriteIfExists; break;
      default: return false;
    }
  }
  return true;
}

}  // namespace

bool decode_check_response(std::string_view in, CheckResult& out, std::string& why) {
  out = CheckResult{};
  bool ok = each_field(in, [&](uint32_t f, uint32_t wire, Reader& r, bool& handled) {
    std::string_view sub;
    if (f == 1) {  // google.rpc.Status
      handled = true;
      if (wire != 2 || !r.length_delimited(sub)) return false;
      return each_field(sub, [&](uint32_t sf, uint32_t sw, Reader& sr, bool& sh) {
        if (sf == 1) {
          sh = true;
          uint64_t v;
          if (sw != 0 || !sr.varint(v)) return false;
          out.code = static_cast<int32_t>(static_cast<uint32_t>(v));
          return true;
        }
        if (sf == 2) return sh = true, read_string(sw, sr, out.message);
        return true;
      });
    }
    if (f == 2) {  // DeniedHttpResponse
      handled = true;
      if (wire != 2 || !r.length_delimited(sub)) return false;
      return each_field(sub, [&](uint32_t df, uint32_t dw, Reader& dr, bool& dh) {
        std::string_view m;
        if (df == 1) {  // HttpStatus
          dh = true;
          if (dw != 2 || !dr.length_delimited(m)) return false;
          return each_field(m, [&](uint32_t hf, uint32_t hw, Reader& hr, bool& hh) {
            if (hf != 1) return true;
            hh = true;
            uint64_t v;
            if (hw != 0 || !hr.varint(v)) return false;
            out.http_status = v <= 999 ? static_cast<int>(v) : -1;
            return true;
          });
        }
        if (df == 2) {
          dh = true;
          if (dw != 2 || !dr.length_delimited(m)) return false;
          HeaderOp op;
          if (!read_header_value_option(m, op)) return false;
          out.headers.push_back(std::move(op));
          return true;
        }
        if (df == 3) return dh = true, read_string(dw, dr, out.body);
        return true;
      });
    }
    if (f == 3) {  // OkHttpResponse
      handled = true;
      if (wire != 2 || !r.length_delimited(sub)) return false;
      return each_field(sub, [&](uint32_t of, uint32_t ow, Reader& orr, bool& oh) {
        std::string_view m;
        if (of == 2) {
          oh = true;
          if (ow != 2 || !orr.length_delimited(m)) return false;
          HeaderOp op;
          if (!read_header_value_option(m, op)) return false;
          out.headers.push_back(std::move(op));
          return true;
        }
        if (of == 5) {
          oh = true;
          std::string name;
          if (!read_string(ow, orr, name)) return false;
          out.headers_to_remove.push_back(std::move(name));
          return true;
        }
        return true;
      });
    }
    return true;
  });
  if (!ok) why = "malformed CheckResponse";
  return ok;
}

std::string grpc_frame(std::string_view message) {
  std::string out;
  out.reserve(5 + message.size());
  out.push_back('\0');
  const auto n = static_cast<uint32_t>(message.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(message);
  return out;
}

bool grpc_unframe(std::string_view data, std::string_view& message, std::string& why) {
  if (data.size() < 5) {
    why = "no gRPC message in the answer";
    return false;
  }
  if (data[0] != 0) {
    why = "a compressed gRPC message (not asked for)";
    return false;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const uint64_t n = (uint64_t{p[1]} << 24) | (uint64_t{p[2]} << 16) | (uint64_t{p[3]} << 8) | p[4];
  if (n != data.size() - 5) {
    why = "the gRPC answer is not one whole message";
    return false;
  }
  message = data.substr(5);
  return true;
}

}  // namespace gantry::filters::ext_authz
