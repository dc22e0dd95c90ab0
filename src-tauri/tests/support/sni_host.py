#!/usr/bin/python3
"""The tray side of a desktop panel, for src-tauri/tests/e2e.rs.

Owns org.kde.StatusNotifierWatcher on the session bus, as a panel does (KDE Plasma, Xfce,
GNOME's AppIndicator extension), so that the app's libayatana-appindicator registers its
StatusNotifierItem there. It then reads the item as a panel would and prints one JSON line
per event on stdout:

  {"event": "ready"}                                  the watcher name is owned
  {"event": "item", "id": ..., "icon_name": ..., "icon_theme_path": ..., "tooltip": ..., "menu": ...}
                                                      on registration and on every
                                                      NewIcon / NewToolTip / NewStatus
  {"event": "menu", "items": [{"id": 1, "label": "Quit", "toggle_state": -1}, ...]}
  {"event": "clicked", "id": 3}
  {"event": "error", "message": ...}

Commands on stdin, one per line: "menu" (read the item's dbusmenu layout), "click ID" (a
click on a menu entry, as the panel sends it when someone picks it).
"""
import json
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

WATCHER = """<node><interface name="org.kde.StatusNotifierWatcher">
  <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
  <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
  <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
  <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
  <property name="ProtocolVersion" type="i" access="read"/>
  <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
  <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
  <signal name="StatusNotifierHostRegistered"/>
</interface></node>"""

bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
items = []  # "busname/path"
item = {}  # the last registered item: bus, path


def say(**event):
    print(json.dumps(event), flush=True)


def call(dest, path, iface, method, args, reply):
    return bus.call_sync(dest, path, iface, method, args, GLib.VariantType(reply),
                         Gio.DBusCallFlags.NONE, 5000, None).unpack()


def report_item(*_):
    try:
        (props,) = call(item["bus"], item["path"], "org.freedesktop.DBus.Properties", "GetAll",
                        GLib.Variant("(s)", ("org.kde.StatusNotifierItem",)), "(a{sv})")
        tooltip = props.get("ToolTip")
        say(event="item", id=props.get("Id"), icon_name=props.get("IconName"),
            icon_theme_path=props.get("IconThemePath"), status=props.get("Status"),
            tooltip=tooltip[2] if tooltip else None, menu=props.get("Menu"))
    except GLib.Error as e:
        say(event="error", message=e.message)


def on_watcher_call(conn, sender, path, iface, method, params, invocation):
    if method == "RegisterStatusNotifierItem":
        (service,) = params.unpack()
        # libayatana-appindicator sends its object path; others send a bus name.
        bus_name, obj = (sender, service) if service.startswith("/") else (service, "/StatusNotifierItem")
        item.update(bus=bus_name, path=obj)
        items.append(bus_name + obj)
        invocation.return_value(None)
        conn.emit_signal(None, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher",
                         "StatusNotifierItemRegistered", GLib.Variant("(s)", (bus_name + obj,)))
        for signal in ("NewIcon", "NewToolTip", "NewStatus"):
            conn.signal_subscribe(bus_name, "org.kde.StatusNotifierItem", signal, obj, None,
                                  Gio.DBusSignalFlags.NONE, report_item)
        report_item()
    else:
        invocation.return_value(None)


def on_watcher_get(conn, sender, path, iface, prop):
    return {
        "RegisteredStatusNotifierItems": GLib.Variant("as", items),
        "IsStatusNotifierHostRegistered": GLib.Variant("b", True),
        "ProtocolVersion": GLib.Variant("i", 0),
    }[prop]


def menu_items(node):
    _id, props, children = node
    out = []
    for child in children:
        cid, cprops, _ = child
        out.append({"id": cid, "label": cprops.get("label", ""),
                    "toggle_state": cprops.get("toggle-state", -1)})
    return out


def on_stdin(source, _condition):
    line = source.readline()
    if not line:
        loop.quit()
        return False
    words = line.split()
    try:
        menu = item.get("menu_path") or call(
            item["bus"], item["path"], "org.freedesktop.DBus.Properties", "Get",
            GLib.Variant("(ss)", ("org.kde.StatusNotifierItem", "Menu")), "(v)")[0]
        if words[:1] == ["menu"]:
            _rev, layout = call(item["bus"], menu, "com.canonical.dbusmenu", "GetLayout",
                                GLib.Variant("(iias)", (0, -1, [])), "(u(ia{sv}av))")
            say(event="menu", items=menu_items(layout))
        elif words[:1] == ["click"] and len(words) == 2:
            call(item["bus"], menu, "com.canonical.dbusmenu", "Event",
                 GLib.Variant("(isvu)", (int(words[1]), "clicked", GLib.Variant("i", 0), 0)), "()")
            say(event="clicked", id=int(words[1]))
        else:
            say(event="error", message="unknown command")
    except (GLib.Error, KeyError) as e:
        say(event="error", message=str(e))
    return True


node = Gio.DBusNodeInfo.new_for_xml(WATCHER)
bus.register_object("/StatusNotifierWatcher", node.interfaces[0], on_watcher_call, on_watcher_get, None)
Gio.bus_own_name_on_connection(bus, "org.kde.StatusNotifierWatcher", Gio.BusNameOwnerFlags.NONE,
                               lambda *_: say(event="ready"),
                               lambda *_: say(event="error", message="name not owned"))
GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
loop = GLib.MainLoop()
loop.run()
