#!/usr/bin/python3
"""Asks a window to close, as a window manager's close button does: a WM_DELETE_WINDOW
client message (ICCCM) to the top-level windows whose name matches PATTERN (a regular
expression, as `xdotool search --name` takes it) on $DISPLAY that take it. For
src-tauri/tests/e2e.rs, which runs the app under Xvfb with no window manager.

Usage: wm_close.py PATTERN   (prints how many windows were asked)
"""
import ctypes
import subprocess
import sys

x = ctypes.cdll.LoadLibrary("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XInternAtom.restype = ctypes.c_ulong
x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x.XGetWMProtocols.argtypes = [ctypes.c_void_p, ctypes.c_ulong,
                              ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
                              ctypes.POINTER(ctypes.c_int)]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                         ctypes.c_void_p]
x.XFlush.argtypes = [ctypes.c_void_p]
x.XFree.argtypes = [ctypes.c_void_p]


class XClientMessageEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class XEvent(ctypes.Union):
    _fields_ = [("xclient", XClientMessageEvent), ("pad", ctypes.c_long * 24)]


CLIENT_MESSAGE = 33
pattern = sys.argv[1]
found = subprocess.run(["xdotool", "search", "--name", pattern],
                       capture_output=True, text=True).stdout.split()
display = x.XOpenDisplay(None)
if not display:
    sys.exit("no display")
protocols = x.XInternAtom(display, b"WM_PROTOCOLS", 0)
delete = x.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
asked = 0
for win in map(int, found):
    atoms = ctypes.POINTER(ctypes.c_ulong)()
    count = ctypes.c_int()
    if not x.XGetWMProtocols(display, win, ctypes.byref(atoms), ctypes.byref(count)):
        continue
    takes = any(atoms[i] == delete for i in range(count.value))
    x.XFree(atoms)
    if not takes:
        continue
    ev = XEvent()
    ev.xclient.type = CLIENT_MESSAGE
    ev.xclient.window = win
    ev.xclient.message_type = protocols
    ev.xclient.format = 32
    ev.xclient.data[0] = delete
    ev.xclient.data[1] = 0  # CurrentTime
    x.XSendEvent(display, win, 0, 0, ctypes.byref(ev))
    asked += 1
x.XFlush(display)
print(asked)
