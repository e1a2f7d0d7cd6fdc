#include "nicoffload/hooks/domain.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "nicoffload/common/text.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::hooks {
namespace {

using testing::domainXml;
using testing::kUuid;
using testing::twoPorts;

TEST(DomainXml, ParsesInterfacesOfEveryKindAndThePortsOfTheMetadata) {
  auto d = parseDomainXml(domainXml(twoPorts()));
  ASSERT_TRUE(d) << d.error().describe();
  EXPECT_EQ(d->name, "vm-web-1");
  EXPECT_EQ(d->uuid, kUuid);  // lower-cased
  ASSERT_EQ(d->interfaces.size(), 5u);
  EXPECT_EQ(d->interfaces[0].type, "vdpa");
  EXPECT_EQ(d->interfaces[0].mac, "52:54:00:aa:00:01");  // normalised
  EXPECT_EQ(d->interfaces[0].source_dev, "/dev/vhost-vdpa-0");
  EXPECT_EQ(d->interfaces[1].type, "vhostuser");
  EXPECT_EQ(d->interfaces[1].source_dev, "/run/nicoffload/vhost/nfo0.sock");
  EXPECT_EQ(d->interfaces[2].type, "hostdev");
  EXPECT_EQ(d->interfaces[3].type, "ethernet");
  EXPECT_EQ(d->interfaces[3].target_dev, "nfotap4");
  EXPECT_EQ(d->interfaces[4].type, "bridge");
  EXPECT_EQ(d->interfaces[4].source_dev, "br0");

  ASSERT_TRUE(d->has_metadata);
  ASSERT_EQ(d->ports.size(), 2u);
  const auto& eth = d->ports[0];
  EXPECT_EQ(eth.key.vm, kUuid);
  EXPECT_EQ(eth.key.nic, 3);              // matched by MAC
  EXPECT_EQ(eth.representor, "nfotap4");  // the tap stands for the representor
  ASSERT_TRUE(eth.vni);
  EXPECT_EQ(*eth.vni, 100u);
  ASSERT_EQ(eth.addresses.size(), 2u);
  EXPECT_EQ(eth.addresses[1].str(), "10.0.1.4");
  EXPECT_FALSE(eth.vf);
  const auto& vdpa = d->ports[1];
  EXPECT_EQ(vdpa.key.nic, 0);
  ASSERT_TRUE(vdpa.vf);
  EXPECT_EQ(*vdpa.vf, 3);
  EXPECT_TRUE(vdpa.representor.empty());  // not an ethernet interface: pf0vf3
  EXPECT_EQ(vdpa.representorName(), "pf0vf3");
  EXPECT_EQ(d->port_interface, (std::vector<std::size_t>{3, 0}));
}

TEST(DomainXml, WithoutOurMetadataHasNoPorts) {
  auto d = parseDomainXml(domainXml(""));
  ASSERT_TRUE(d) << d.error().describe();
  EXPECT_FALSE(d->has_metadata);
  EXPECT_TRUE(d->ports.empty());
  EXPECT_EQ(d->interfaces.size(), 5u);
  // Another namespace with the same local names is not ours.
  auto other = parseDomainXml(domainXml(
      "<x:ports xmlns:x='http://example.org/ports'><x:port mac='52:54:00:aa:00:04'/></x:ports>"));
  ASSERT_TRUE(other) << other.error().describe();
  EXPECT_FALSE(other->has_metadata);
}

TEST(DomainXml, TheNamespacePrefixIsFree) {
  auto d = parseDomainXml(domainXml(
      "<p:ports xmlns:p='http://nicoffload.org/xmlns/ports/1'><p:port mac='52:54:00:aa:00:05'>"
      "<p:address>10.9.9.9/32</p:address></p:port></p:ports>"));
  ASSERT_TRUE(d) << d.error().describe();
  ASSERT_EQ(d->ports.size(), 1u);
  EXPECT_EQ(d->ports[0].key.nic, 4);
  EXPECT_TRUE(d->ports[0].representor.empty());  // a bridge's tap is not a representor
  // Default namespace on the element.
  auto dflt = parseDomainXml(
      domainXml("<ports xmlns='http://nicoffload.org/xmlns/ports/1'><port mac='52:54:00:aa:00:02'>"
                "<address>10.9.9.8</address></port></ports>"));
  ASSERT_TRUE(dflt) << dflt.error().describe();
  ASSERT_EQ(dflt->ports.size(), 1u);
  EXPECT_EQ(dflt->ports[0].key.nic, 1);
}

TEST(DomainXml, MalformedXmlIsRefusedWithItsOffset) {
  auto d = parseDomainXml("<domain><name>x</name><uuid>abc</uuid><devices>");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(d.error().message.find("not well-formed"), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find("at byte"), std::string::npos);
  auto empty = parseDomainXml("");
  ASSERT_FALSE(empty);
  auto root = parseDomainXml("<network><name>default</name></network>");
  ASSERT_FALSE(root);
  EXPECT_NE(root.error().message.find("not <domain>"), std::string::npos);
  auto nouuid = parseDomainXml("<domain><name>x</name></domain>");
  ASSERT_FALSE(nouuid);
  EXPECT_EQ(nouuid.error().code, ErrorCode::kMissingField);
  EXPECT_EQ(nouuid.error().field, "uuid");
}

struct BadMetadata {
  const char* what;
  std::string ports;
  ErrorCode code;
  const char* field;
  const char* message_part;
};

// The domain was refused with the case's code, field and message.
void expectRefused(const Result<Domain>& d, const BadMetadata& c) {
  ASSERT_FALSE(d) << c.what;
  EXPECT_EQ(d.error().code, c.code) << c.what << ": " << d.error().describe();
  EXPECT_EQ(d.error().field, c.field) << c.what << ": " << d.error().describe();
  EXPECT_NE(d.error().message.find(c.message_part), std::string::npos)
      << c.what << ": " << d.error().describe();
}

std::string port(const std::string& attrs,
                 const std::string& body = "<nfo:address>10.0.0.4/32</nfo:address>") {
  return "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'><nfo:port " + attrs + ">" +
         body + "</nfo:port></nfo:ports>";
}

TEST(DomainXml, BadMetadataIsRefusedNamingTheField) {
  const std::vector<BadMetadata> cases = {
      {"vni not a number", port("mac='52:54:00:aa:00:04' vni='abc'"), ErrorCode::kInvalidValue,
       "nfo:port[0].vni", "not a non-negative integer"},
      {"vni beyond 24 bits", port("mac='52:54:00:aa:00:04' vni='16777216'"),
       ErrorCode::kInvalidValue, "nfo:port[0].vni", ""},
      {"negative vf", port("mac='52:54:00:aa:00:04' vf='-1'"), ErrorCode::kInvalidValue,
       "nfo:port[0].vf", ""},
      {"address not /32", port("mac='52:54:00:aa:00:04'", "<nfo:address>10.0.0.0/24</nfo:address>"),
       ErrorCode::kInvalidValue, "nfo:port[0].address[0]", ""},
      {"address not IPv4", port("mac='52:54:00:aa:00:04'", "<nfo:address>10.0.0.300</nfo:address>"),
       ErrorCode::kInvalidValue, "nfo:port[0].address[0]", ""},
      {"IPv6 address not /128",
       port("mac='52:54:00:aa:00:04'",
            "<nfo:address>10.0.0.4</nfo:address><nfo:address>2001:db8::/64</nfo:address>"),
       ErrorCode::kInvalidValue, "nfo:port[0].address[1]", "/128"},
      {"IPv6 link-local address",
       port("mac='52:54:00:aa:00:04'", "<nfo:address>fe80::5054:ff:feaa:4</nfo:address>"),
       ErrorCode::kInvalidValue, "nfo:port[0].address[0]", "link-local"},
      {"no address", port("mac='52:54:00:aa:00:04'", ""), ErrorCode::kMissingField,
       "nfo:port[0].address", ""},
      {"no mac", port("vni='1'"), ErrorCode::kMissingField, "nfo:port[0].mac", ""},
      {"bad mac", port("mac='52:54:00:zz:00:04'"), ErrorCode::kInvalidValue, "nfo:port[0].mac", ""},
      {"mac of no interface", port("mac='52:54:00:aa:00:99'"), ErrorCode::kNotFound,
       "nfo:port[0].mac", "no <interface>"},
      {"unknown attribute", port("mac='52:54:00:aa:00:04' vnii='5'"), ErrorCode::kUnknownField,
       "nfo:port[0].vnii", "unknown attribute"},
      {"unknown element", port("mac='52:54:00:aa:00:04'", "<nfo:addr>10.0.0.4</nfo:addr>"),
       ErrorCode::kUnknownField, "nfo:port[0]", "nfo:addr"},
      {"bad vdpa kind", port("mac='52:54:00:aa:00:04' vdpa='fast'"), ErrorCode::kInvalidValue,
       "nfo:port[0].vdpa", ""},
      {"bad representor", port("mac='52:54:00:aa:00:04' representor='a/b'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", ""},
      {"duplicate mac",
       "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>"
       "<nfo:port mac='52:54:00:aa:00:04'><nfo:address>10.0.0.4</nfo:address></nfo:port>"
       "<nfo:port "
       "mac='52:54:00:AA:00:04'><nfo:address>10.0.0.5</nfo:address></nfo:port></nfo:ports>",
       ErrorCode::kDuplicate, "nfo:port[1].mac", ""},
      {"stray element",
       "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'><nfo:nic/></nfo:ports>",
       ErrorCode::kUnknownField, "nfo:ports", "nfo:nic"},
  };
  for (const auto& c : cases) {
    auto d = parseDomainXml(domainXml(c.ports));
    expectRefused(d, c);
  }
  // A bad UUID is named as the domain's <uuid>.
  auto bad_uuid = parseDomainXml(domainXml(twoPorts(), "not-a-uuid"));
  ASSERT_FALSE(bad_uuid);
  EXPECT_EQ(bad_uuid.error().field, "uuid");
}

// Whatever bytes the XML holds, the ports that come out can be sent as JSON
// and every error can be printed (a representor 'rep\xff' used to pass
// validIfName and abort the hook in dump()).
TEST(DomainXml, InvalidUtf8AndNonAsciiNamesAreRefusedNamingTheField) {
  const std::vector<BadMetadata> cases = {
      {"representor not UTF-8", port("mac='52:54:00:aa:00:04' representor='rep\xff'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", "not valid UTF-8"},
      {"representor not ASCII", port("mac='52:54:00:aa:00:04' representor='r\xc3\xa9seau'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", "printable ASCII"},
      {"representor with DEL", port("mac='52:54:00:aa:00:04' representor='tap\x7f'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", "not a valid interface name"},
      {"representor with a tab", port("mac='52:54:00:aa:00:04' representor='ta&#9;p'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", "not a valid interface name"},
      {"representor of 16 bytes", port("mac='52:54:00:aa:00:04' representor='abcdefghijklmnop'"),
       ErrorCode::kInvalidValue, "nfo:port[0].representor", "not a valid interface name"},
      {"vdpa not UTF-8", port("mac='52:54:00:aa:00:04' vdpa='\xc3'"), ErrorCode::kInvalidValue,
       "nfo:port[0].vdpa", "not valid UTF-8"},
      {"mac not UTF-8", port("mac='52:54:00:aa:00:0\xed\xa0\x80'"), ErrorCode::kInvalidValue,
       "nfo:port[0].mac", "not valid UTF-8"},
      {"address not UTF-8",
       port("mac='52:54:00:aa:00:04'", "<nfo:address>10.0.0.4\xff</nfo:address>"),
       ErrorCode::kInvalidValue, "nfo:port[0].address", "not valid UTF-8"},
  };
  for (const auto& c : cases) {
    auto d = parseDomainXml(domainXml(c.ports));
    expectRefused(d, c);
    if (!d.ok()) {
      EXPECT_TRUE(isValidUtf8(d.error().describe())) << c.what;
    }
  }
  for (const char* uuid : {"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a\xff\xfe",
                           "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b0", "g f1e2d3c"}) {
    for (auto parse : {parseDomainXml, parseDomainIdentity}) {
      auto d = parse(domainXml(twoPorts(), uuid));
      ASSERT_FALSE(d) << uuid;
      EXPECT_EQ(d.error().field, "uuid");
      EXPECT_TRUE(isValidUtf8(d.error().describe())) << d.error().describe();
    }
  }
}

TEST(DomainXml, AnEthernetTargetDevIsCheckedAsTheRepresentorItBecomes) {
  std::string e60;
  for (int i = 0; i < 60; ++i) e60 += "\xc3\xa9";  // é, valid UTF-8, 120 bytes
  for (const std::string& tap : {e60, std::string("abcdefghijklmnop"), std::string("a/b")}) {
    std::string xml = domainXml(twoPorts());
    xml.replace(xml.find("nfotap4"), 7, tap);
    auto d = parseDomainXml(xml);
    ASSERT_FALSE(d) << tap;
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidValue);
    EXPECT_EQ(d.error().field, "interface[3].target.dev") << d.error().describe();
    EXPECT_NE(d.error().message.find("representor"), std::string::npos) << d.error().describe();
    EXPECT_LE(d.error().value.size(), kMaxEchoedValueBytes + 3) << "cut short";
    EXPECT_TRUE(isValidUtf8(d.error().describe()));
    // A representor named in the metadata wins: the tap is then not used.
    std::string named_xml = domainXml(port("mac='52:54:00:aa:00:04' representor='rep0'"));
    named_xml.replace(named_xml.find("nfotap4"), 7, tap);
    auto named = parseDomainXml(named_xml);
    ASSERT_TRUE(named) << named.error().describe();
    EXPECT_EQ(named->ports[0].representor, "rep0");
  }
}

TEST(DomainXml, AnInterfaceBeyondIndex65535IsRefusedNotWrapped) {
  auto xml = [](std::size_t index) {
    std::string devices;
    for (std::size_t i = 0; i < index; ++i) devices += "<interface type='user'/>";
    devices += "<interface type='ethernet'><mac address='52:54:00:bb:00:01'/></interface>";
    return std::string("<domain><name>big</name><uuid>") + kUuid + "</uuid><metadata>" +
           port("mac='52:54:00:bb:00:01'") + "</metadata><devices>" + devices +
           "</devices></domain>";
  };
  auto last = parseDomainXml(xml(kMaxInterfaceIndex));
  ASSERT_TRUE(last) << last.error().describe();
  EXPECT_EQ(last->ports[0].key.nic, 65535);
  for (std::size_t index : {std::size_t{65536}, std::size_t{65538}}) {
    auto beyond = parseDomainXml(xml(index));
    ASSERT_FALSE(beyond) << index << " became nic " << beyond->ports[0].key.nic;
    EXPECT_EQ(beyond.error().field, "nfo:port[0].mac");
    EXPECT_NE(beyond.error().message.find("interface " + std::to_string(index)), std::string::npos)
        << beyond.error().describe();
    EXPECT_NE(beyond.error().message.find("0..65535"), std::string::npos);
  }
}

TEST(DomainXml, AMetadataNamespaceThatIsAlmostOursGivesAWarning) {
  const std::string uri = "http://nicoffload.org/xmlns/ports/1/";
  auto d = parseDomainXml(domainXml("<nfo:ports xmlns:nfo='" + uri +
                                    "'><nfo:port mac='52:54:00:aa:00:04'/></nfo:ports>"));
  ASSERT_TRUE(d) << d.error().describe();
  EXPECT_FALSE(d->has_metadata);
  ASSERT_EQ(d->warnings.size(), 1u);
  EXPECT_NE(d->warnings[0].find("'" + uri + "'"), std::string::npos) << d->warnings[0];
  EXPECT_NE(d->warnings[0].find("'" + std::string(kMetadataNamespace) + "'"), std::string::npos);
  EXPECT_NE(d->warnings[0].find("<nfo:ports>"), std::string::npos) << d->warnings[0];
  // Ours, and other people's, give none.
  EXPECT_TRUE(parseDomainXml(domainXml(twoPorts()))->warnings.empty());
  EXPECT_TRUE(parseDomainXml(domainXml(""))->warnings.empty());
}

TEST(DomainXml, RewriteSetsTheSourceOfMatchingInterfacesOnly) {
  auto xml = rewriteInterfaces(domainXml(twoPorts()),
                               {{"52:54:00:aa:00:04", "pf0vf7", "", ""},
                                {"52:54:00:aa:00:01", "ignored-for-vdpa", "/dev/vhost-vdpa-9", ""},
                                {"52:54:00:aa:00:02", "", "", "/run/nicoffload/vhost/other.sock"}});
  ASSERT_TRUE(xml) << xml.error().describe();
  auto d = parseDomainXml(*xml);
  ASSERT_TRUE(d) << d.error().describe() << "\n" << *xml;
  EXPECT_EQ(d->interfaces[3].target_dev, "pf0vf7");
  EXPECT_EQ(d->interfaces[0].source_dev, "/dev/vhost-vdpa-9");
  EXPECT_EQ(d->interfaces[0].target_dev, "");
  EXPECT_EQ(d->interfaces[1].source_dev, "/run/nicoffload/vhost/other.sock");
  EXPECT_EQ(d->interfaces[4].target_dev, "vnet5");
  EXPECT_EQ(d->uuid, kUuid);
  EXPECT_EQ(d->ports.size(), 2u);  // the metadata survives
  EXPECT_FALSE(rewriteInterfaces("<domain>", {}));
}

TEST(DomainXml, GeneratedSnippetsParseBackToThePort) {
  model::Port p;
  p.key = {kUuid, 0};
  p.mac = *MacAddr::parse("52:54:00:12:34:56");
  p.addresses = {*Ipv4Addr::parse("10.1.2.3")};
  p.addresses6 = {*Ipv6Addr::parse("2001:db8:1::3")};
  p.vni = 4000;
  p.vf = 2;
  p.mtu = 9000;
  auto iface = interfaceXmlFor(p, "ethernet", "");
  ASSERT_TRUE(iface) << iface.error().describe();
  EXPECT_NE(iface->find("<target dev='pf0vf2'"), std::string::npos) << *iface;
  const std::string meta = metadataXmlFor({p});
  EXPECT_NE(meta.find("xmlns:nfo='http://nicoffload.org/xmlns/ports/1'"), std::string::npos)
      << meta;
  EXPECT_NE(meta.find("<nfo:address>2001:db8:1::3/128</nfo:address>"), std::string::npos) << meta;
  const std::string dom = "<domain type='qemu'><name>g</name><uuid>" + std::string(kUuid) +
                          "</uuid>" + meta + "<devices>" + *iface + "</devices></domain>";
  auto d = parseDomainXml(dom);
  ASSERT_TRUE(d) << d.error().describe() << "\n" << dom;
  ASSERT_EQ(d->ports.size(), 1u);
  EXPECT_EQ(model::toJson(d->ports[0]), model::toJson([&] {
              auto q = p;
              q.representor = "pf0vf2";  // from the generated <target dev>
              return q;
            }()));
  auto vdpa = interfaceXmlFor(p, "vdpa", "/dev/vhost-vdpa-2");
  ASSERT_TRUE(vdpa);
  EXPECT_NE(vdpa->find("type='vdpa'"), std::string::npos);
  EXPECT_FALSE(interfaceXmlFor(p, "vdpa", "relative"));
  EXPECT_FALSE(interfaceXmlFor(p, "macvtap", ""));
  p.vf.reset();
  EXPECT_FALSE(interfaceXmlFor(p, "ethernet", ""));
}

}  // namespace
}  // namespace nicoffload::hooks
