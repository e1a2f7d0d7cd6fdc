// A libvirt domain as the qemu hook sees it: the full domain XML that libvirt
// writes to the hook's stdin, parsed with pugixml into the interfaces and the
// ports the domain's <metadata> asks nicoffload for.
//
// Metadata schema (namespace kMetadataNamespace; the prefix is free):
//
//   <metadata>
//     <nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>
//       <nfo:port mac='52:54:00:00:00:01' vni='100' vf='3' representor='tap0'
//                 mtu='1500' queues='1' vdpa='sim'>     (all but mac optional)
//         <nfo:address>10.0.0.5/32</nfo:address>        (one or more)
//       </nfo:port>
//     </nfo:ports>
//   </metadata>
//
// Each <nfo:port> refers to the domain's <interface> with the same MAC. The
// port key is (domain UUID, index of that interface among the <interface>
// elements of <devices>, from 0). For an <interface type='ethernet'> whose
// <target dev='X'/> is set, X is the representor when the port names none: the
// tap stands for the VF's representor, so the software path goes on it; it
// is validated as a representor named in the metadata would be.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::hooks {

inline constexpr std::string_view kMetadataNamespace = "http://nicoffload.org/xmlns/ports/1";

// The highest interface index a port key can carry: model::PortKey::nic is
// 16 bits and nicoffloadd's parsePort accepts "nic" in 0..65535. A port on a
// later interface is refused rather than wrapped onto another one.
inline constexpr std::size_t kMaxInterfaceIndex = 65535;

// One <interface> of <devices>.
struct DomainInterface {
  std::size_t index = 0;  // position among the domain's <interface> elements
  std::string type;       // type attribute: vdpa, vhostuser, hostdev, ethernet, bridge, network ...
  std::string mac;        // <mac address>, lower case; empty when absent
  std::string target_dev;  // <target dev>; empty when absent
  std::string source_dev;  // <source dev> (vdpa, direct), or <source bridge/network/path>
};

struct Domain {
  std::string name;  // <name>
  std::string uuid;  // <uuid>, lower case
  std::vector<DomainInterface> interfaces;
  bool has_metadata = false;                // an <nfo:ports> element is present
  std::vector<model::Port> ports;           // validated ports, in metadata order
  std::vector<std::size_t> port_interface;  // for each port, its index in `interfaces`
  // Things the operator should know that do not stop the parse, one sentence
  // each (printable): a <metadata> element in a namespace that is almost ours
  // (another version, a trailing slash, other case), which is ignored.
  std::vector<std::string> warnings;
};

// Parses a domain XML document (the bytes libvirt writes to the hook's
// stdin). Pure: never throws (std::bad_alloc aside) and takes any bytes; a
// fuzz target calls it directly. Errors (kInvalidValue unless said otherwise):
//  - the text is not well-formed XML (the message carries pugixml's
//    description and the byte offset);
//  - the root is not <domain>; <uuid> is missing (kMissingField) or not an
//    RFC 4122 UUID (8-4-4-4-12 hex digits);
//  - metadata errors name the field, e.g. "nfo:port[1].vni": unknown attribute
//    or element (kUnknownField), an attribute or address that is not valid
//    UTF-8, a value that is not a number, a MAC that no <interface> carries
//    (kNotFound), a MAC given twice (kDuplicate), a port without
//    <nfo:address> (kMissingField), a port on an interface whose index
//    exceeds kMaxInterfaceIndex, an ethernet <target dev> that is not a valid
//    representor name (field "interface[N].target.dev"), and everything
//    model::parsePort refuses (bad MAC, address not a /32, VNI beyond 24 bits,
//    a representor that is not 1-15 printable ASCII characters, ...).
// A domain without <nfo:ports> parses with has_metadata == false and no ports.
// Every value an error echoes is printable (makeError).
Result<Domain> parseDomainXml(std::string_view xml);

// Only the name and UUID, for cleanup when the metadata itself is bad.
// Errors: as parseDomainXml for malformed XML and a missing or invalid <uuid>.
Result<Domain> parseDomainIdentity(std::string_view xml);

// What this host offers for one port, to rewrite the domain's <interface>
// when libvirt asks the hook to filter the XML (migrate, restore).
struct InterfaceRewrite {
  std::string mac;             // the <interface> to change (lower case)
  std::string target_dev;      // ethernet: the tap/representor name; empty = keep
  std::string vdpa_dev;        // vdpa: <source dev>; empty = keep
  std::string vhostuser_path;  // vhostuser: <source path>; empty = keep
};

// Returns the domain XML with the matching interfaces rewritten (every other
// byte of meaning kept). An interface of type vdpa or vhostuser takes the
// type of the device this host gives the port: type='vdpa' with
// <source dev>, or type='vhostuser' with <source type='unix' path mode='client'>
// (QEMU connects to the socket nicoffloadd serves) and reconnect, so a domain
// moves between hosts whose vDPA backends differ. Ethernet interfaces only
// get their target. Errors: kInvalidValue for malformed XML.
Result<std::string> rewriteInterfaces(std::string_view xml,
                                      const std::vector<InterfaceRewrite>& rewrites);

// nicoffloadctl domain-xml: the <interface> and <metadata> to put into a
// domain definition for `port`.
//  kind "ethernet": <interface type='ethernet'> with <target dev=X managed='yes'>,
//                   X = `source`, else the port's representor name: a tap
//                   libvirt creates that stands for the representor (tests,
//                   simulation);
//  kind "vdpa":     <interface type='vdpa'> with <source dev=source> (absolute);
//  kind "vhostuser":<interface type='vhostuser'> with the socket `source`.
// Errors: kInvalidValue for an unknown kind or a missing/relative source.
Result<std::string> interfaceXmlFor(const model::Port& port, const std::string& kind,
                                    const std::string& source);
std::string metadataXmlFor(const std::vector<model::Port>& ports);

}  // namespace nicoffload::hooks
