// The libvirt <interface> elements, parsed back with pugixml.
#include "nicoffload/vdpa/domain_xml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <pugixml.hpp>

namespace nicoffload::vdpa {
namespace {

using ::testing::HasSubstr;

model::Port port(std::uint16_t mtu = 1500, std::uint16_t queues = 1) {
  model::Port p;
  p.key = {"6f3c2a1e-0000-4000-8000-000000000001", 2};
  p.mac = *MacAddr::parse("52:54:00:aa:bb:01");
  p.mtu = mtu;
  p.queues = queues;
  return p;
}

pugi::xml_node parse(pugi::xml_document& doc, const std::string& xml) {
  const auto r = doc.load_string(xml.c_str());
  EXPECT_TRUE(r) << r.description() << "\n" << xml;
  return doc.document_element();
}

TEST(DomainXml, Vdpa) {
  auto xml = vdpaInterfaceXml("/dev/vhost-vdpa-3", port(9000, 4));
  ASSERT_TRUE(xml.ok()) << xml.error().describe();
  pugi::xml_document doc;
  auto iface = parse(doc, *xml);
  EXPECT_STREQ(iface.name(), "interface");
  EXPECT_STREQ(iface.attribute("type").value(), "vdpa");
  EXPECT_STREQ(iface.child("mac").attribute("address").value(), "52:54:00:aa:bb:01");
  EXPECT_STREQ(iface.child("source").attribute("dev").value(), "/dev/vhost-vdpa-3");
  EXPECT_STREQ(iface.child("model").attribute("type").value(), "virtio");
  EXPECT_FALSE(iface.child("mtu")) << "the MTU is the vDPA device's own config";
  EXPECT_FALSE(iface.child("driver"));
  EXPECT_EQ(std::distance(iface.children().begin(), iface.children().end()), 3);
}

TEST(DomainXml, VhostUser) {
  auto xml = vhostUserInterfaceXml("/run/nicoffload/vhost/nfo0123456789ab.sock", port(9000, 4));
  ASSERT_TRUE(xml.ok()) << xml.error().describe();
  pugi::xml_document doc;
  auto iface = parse(doc, *xml);
  EXPECT_STREQ(iface.attribute("type").value(), "vhostuser");
  auto source = iface.child("source");
  EXPECT_STREQ(source.attribute("type").value(), "unix");
  EXPECT_STREQ(source.attribute("path").value(), "/run/nicoffload/vhost/nfo0123456789ab.sock");
  EXPECT_STREQ(source.attribute("mode").value(), "client");
  EXPECT_STREQ(source.child("reconnect").attribute("enabled").value(), "yes");
  EXPECT_EQ(source.child("reconnect").attribute("timeout").as_int(), 5);
  EXPECT_EQ(iface.child("mtu").attribute("size").as_int(), 9000);
  EXPECT_EQ(iface.child("driver").attribute("queues").as_int(), 4);
  auto plain = vhostUserInterfaceXml("/run/x.sock", port());
  ASSERT_TRUE(plain.ok());
  pugi::xml_document doc2;
  auto i2 = parse(doc2, *plain);
  EXPECT_FALSE(i2.child("mtu")) << "1500 is the default";
  EXPECT_FALSE(i2.child("driver")) << "one queue pair is the default";
}

TEST(DomainXml, ValuesAreEscapedNotConcatenated) {
  const std::string hostile = "/run/a'b\"<c>&d.sock";
  auto xml = vhostUserInterfaceXml(hostile, port());
  ASSERT_TRUE(xml.ok());
  EXPECT_THAT(*xml, ::testing::Not(HasSubstr("<c>")));
  pugi::xml_document doc;
  auto iface = parse(doc, *xml);
  EXPECT_EQ(std::string(iface.child("source").attribute("path").value()), hostile);
  EXPECT_EQ(std::distance(doc.children().begin(), doc.children().end()), 1)
      << "one element, nothing injected";
}

TEST(DomainXml, RelativePathsAreRefused) {
  auto a = vdpaInterfaceXml("vhost-vdpa-3", port());
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(a.error().message, HasSubstr("is not an absolute path: 'vhost-vdpa-3'"));
  auto b = vhostUserInterfaceXml("", port());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ErrorCode::kInvalidValue);
}

}  // namespace
}  // namespace nicoffload::vdpa
