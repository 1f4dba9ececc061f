#!/usr/bin/env python3
"""Generate realistic synthetic sstate caches for benchmarks and simulations.

Benchmarks of listing, upload, clean and info need caches with the *shape* of a real build:
the same names, directory layout, task mix and size distribution, at 2,000 or 200,000 files,
reproducibly. Written for real (not ``--sparse``), the files are real too, so that verify,
analyze and lint read what they would read on a mirror: archives are valid zstd (or gzip) tar
streams and each ``.siginfo`` a readable signature of the task its name says, with hashes that
recompute (``verify --all`` reports no error). Building such a cache with bitbake takes hours
and gigabytes; this module makes one in seconds, from a seed.

Usage as a script::

    python benchmarks/gencache.py OUT_DIR --files 20000 --seed 1 --mtime-spread 30 \\
        --manifest OUT_DIR.json
    python benchmarks/gencache.py OUT_DIR2 --derive-from OUT_DIR.json --changed 0.1

Usage as a module::

    from gencache import plan, derive, write_cache, save_manifest
    first = plan(20000, seed=1)
    second = derive(first, 0.1, seed=2)     # 90 % of its files are also in `first`
    write_cache("mirror", first, sparse=True)
    write_cache("local", second, sparse=True)

How the names and sizes are modelled (and from which sources) is described in
``benchmarks/README.md``. Every name this module writes is checked by the project's own parser
(``sstate_mirror.naming``) in ``tests/test_gencache.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: Archives keep their real size up to this many bytes; only the part above it is scaled, so
#: that the many tiny archives (34-byte ``recipe_qa``) stay realistic at any ``size_scale``.
SCALE_FLOOR = 4 * KiB

#: Default ``size_scale``: 20,000 files come to a few hundred MiB (a real build of that size
#: is 15-25 GiB), small enough for a laptop benchmark.
DEFAULT_SIZE_SCALE = 0.02

#: Share of archives that get a detached ``.sig`` by default (mixed producers on one mirror).
DEFAULT_SIG_FRACTION = 0.05

#: The longest name OE writes; archives keep 8 characters for ``.siginfo``
#: (``generate_sstatefn`` in OE-core ``sstate.bbclass``).
NAME_LIMIT = 254

FLAVOURS = ("oe", "isar", "legacy")

_MKTEMP_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PYTEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


class Entry(NamedTuple):
    """One file of a generated cache, as the benchmark harness needs it.

    ``kind`` is the value of ``sstate_mirror.naming.Kind`` the file is meant to classify as;
    ``mtime`` is whole POSIX seconds (what S3 and WebDAV report anyway).
    """

    path: str
    size: int
    mtime: int
    kind: str


# --------------------------------------------------------------------------------------------
# Size models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeModel:
    """A log-normal archive size: ``median * heft**heft_exp * lognormal(0, sigma)``.

    ``heft`` is the recipe's bulk (1 = an ordinary library, 100 = a toolchain); ``heft_exp``
    says how much a task's output grows with it (licences hardly, packages fully).
    """

    median: float
    sigma: float
    heft_exp: float = 1.0
    floor: int = 32
    cap: int = int(1.5 * GiB)


# Archive sizes at size_scale 1, from real OE builds (qemux86-64 core-image-sato, 2024-2026):
# the fixed tiny ones (recipe_qa 34 B, deploy_source_date_epoch ~158 B, populate_lic ~1 KiB
# for one licence) are exact values from tests/data/oe-wrynose; the others are medians of
# typical caches, with a heavy tail through each recipe's heft.
OE_ARCHIVES: Dict[str, SizeModel] = {
    "populate_lic": SizeModel(3 * KiB, 0.7, 0.15, floor=600),
    "populate_sysroot": SizeModel(150 * KiB, 1.2, 1.0, floor=200),
    "package": SizeModel(800 * KiB, 1.3, 1.0, floor=1 * KiB),
    "packagedata": SizeModel(8 * KiB, 0.9, 0.5, floor=500),
    "package_qa": SizeModel(220, 0.25, 0.0, floor=150),
    "package_write_rpm": SizeModel(400 * KiB, 1.3, 1.0, floor=2 * KiB),
    "package_write_ipk": SizeModel(350 * KiB, 1.3, 1.0, floor=1 * KiB),
    "package_write_deb": SizeModel(380 * KiB, 1.3, 1.0, floor=1 * KiB),
    "deploy_source_date_epoch": SizeModel(158, 0.005, 0.0, floor=150),
    "recipe_qa": SizeModel(34, 0.0, 0.0, floor=34),
    "create_spdx": SizeModel(16 * KiB, 0.8, 0.4, floor=2 * KiB),
    "create_package_spdx": SizeModel(10 * KiB, 0.8, 0.4, floor=1 * KiB),
    "deploy": SizeModel(6 * MiB, 1.0, 0.5, floor=4 * KiB),
    "image_complete": SizeModel(120 * MiB, 0.7, 1.0, floor=1 * MiB),
    "create_rootfs_spdx": SizeModel(400 * KiB, 0.6, 1.0, floor=8 * KiB),
    "create_image_spdx": SizeModel(60 * KiB, 0.5, 0.2, floor=4 * KiB),
}
# Native, cross and crosssdk tools are installed unsplit and unstripped: bigger sysroots.
NATIVE_POPULATE_SYSROOT = SizeModel(1 * MiB, 1.2, 1.0, floor=200)

ISAR_ARCHIVES: Dict[str, SizeModel] = {
    "dpkg_build": SizeModel(150 * KiB, 1.3, 1.0, floor=1 * KiB),
    "bootstrap": SizeModel(90 * MiB, 0.35, 0.0, floor=10 * MiB),
    "rootfs_install": SizeModel(220 * MiB, 0.5, 0.5, floor=20 * MiB),
    "copy_boot_files": SizeModel(12 * MiB, 0.7, 0.3, floor=64 * KiB),
    "generate_initramfs": SizeModel(30 * MiB, 0.5, 0.0, floor=2 * MiB),
}

# .siginfo medians per task (bytes). OE (zstd JSON) and legacy (pickle) values for the tasks in
# tests/data are the sizes bitbake wrote there; the others are estimates from real caches.
# Real recipes have more variables than the test layer's, hence the per-recipe factor below.
OE_SIGINFO: Dict[str, int] = {
    "fetch": 1300, "unpack": 2500, "patch": 4200, "preconfigure": 3000,
    "populate_lic": 11300, "prepare_recipe_sysroot": 900, "configure": 7700,
    "compile": 4800, "install": 4750, "populate_sysroot": 14860,
    "deploy_source_date_epoch": 10270, "recipe_qa": 7690,
}
LEGACY_SIGINFO: Dict[str, int] = {
    "fetch": 1600, "unpack": 2210, "patch": 6975, "preconfigure": 5000,
    "populate_lic": 35700, "prepare_recipe_sysroot": 1440, "configure": 16660,
    "compile": 9000, "install": 8540, "populate_sysroot": 38059,
}
DEFAULT_SIGINFO = 9000  # tasks not listed above (package, rootfs, dpkg_build, ...)
SIGINFO_MIN, SIGINFO_MAX = 500, 64 * KiB
#: A pickled signature with its hashes takes more than SIGINFO_MIN (real ones are >= 1.4 KiB).
LEGACY_SIGINFO_MIN = 1 * KiB
SIG_SIZE = 566  # a binary detached RSA-4096 signature (gpg --detach-sign)


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------

# The recipe pool: "PN PV CLASS HEFT [FLAGS]". CLASS:
#   T target (tune arch)   TN target + -native   N native only   A allarch   AN allarch + -native
#   M machine arch         I image               G packagegroup (allarch)
#   GM packagegroup (machine arch)
#   C cross (PN pattern with {arch}/{tune})      S crosssdk ({sdksys})        K nativesdk
#   P shared source (gcc-source-PV: software-only tasks)
# FLAGS: '*' core (toolchain and basics: in every cache, first), 'k' kernel, 'd' has do_deploy.
# PVs are those of OE-core/meta-oe master in 2025-2026, rounded; they only need to look real.
OE_POOL = """
glibc 2.41+git T 20 *
glibc-locale 2.41+git T 60 *
linux-libc-headers 6.12 T 3 *
libgcc 15.1.0 T 2 *
libgcc-initial 15.1.0 T 1 *
gcc-runtime 15.1.0 T 8 *
gcc-sanitizers 15.1.0 T 6 *
gcc 15.1.0 T 80 *
binutils 2.44 T 10 *
gcc-cross-{arch} 15.1.0 C 100 *
binutils-cross-{arch} 2.44 C 30 *
gcc-source-15.1.0 15.1.0 P 1 *
qemuwrapper-cross 1.0 C 0.01 *
depmodwrapper-cross 1.0 C 0.01 *
linux-yocto 6.12.23+git M 150 *kd
u-boot 2025.04 M 3 d
base-files 3.0.14 M 0.05 *
base-passwd 3.6.6 T 0.1 *
busybox 1.37.0 T 2 *
zlib 1.3.1 TN 1 *
xz 5.8.1 TN 1.5 *
zstd 1.5.7 TN 1.5 *
bzip2 1.0.8 TN 0.8 *
openssl 3.5.0 TN 6 *
ncurses 6.5 TN 3 *
readline 8.2.13 TN 1.5 *
util-linux 2.40.4 TN 5 *
util-linux-libuuid 2.40.4 TN 0.5 *
e2fsprogs 1.47.2 TN 3 *
kmod 34.1 TN 1 *
systemd 257.4 T 15 *
systemd-systemctl 1.0 N 0.3 *
dbus 1.16.2 TN 2 *
glib-2.0 2.84.0 TN 6 *
libffi 3.4.7 TN 0.5 *
libxml2 2.13.6 TN 3 *
expat 2.7.1 TN 0.8 *
python3 3.13.3 TN 15 *
perl 5.40.1 TN 10 *
autoconf 2.72e N 1 *
automake 1.17 N 1 *
libtool 2.5.4 TN 1 *
m4 1.4.19 N 0.8 *
gettext 0.23.1 TN 4 *
gettext-minimal 0.23.1 N 0.5 *
pkgconf 2.3.0 TN 0.4 *
quilt 0.69 N 0.3 *
bison 3.8.2 N 1.5 *
flex 2.6.4 TN 1 *
gnu-config 20240823+git N 0.05 *
texinfo-dummy 1.0 N 0.01 *
pseudo 1.9.0+git N 1 *
makedevs 1.0.1 TN 0.1 *
cmake 4.0.1 TN 15 *
meson 1.7.0 N 3 *
ninja 1.12.1 N 1 *
python3-setuptools 78.1.0 TN 2 *
python3-wheel 0.45.1 TN 0.3 *
python3-flit-core 3.12.0 TN 0.3 *
python3-installer 0.7.0 TN 0.3 *
python3-build 1.2.2 TN 0.3 *
python3-packaging 24.2 TN 0.3 *
python3-pyproject-hooks 1.2.0 TN 0.1 *
cross-localedef 2.41+git N 2 *
debugedit 5.1 TN 0.8 *
rpm 4.20.1 TN 4 *
opkg-utils 0.6.3 TN 0.2 *
shadow 4.17.4 TN 2 *
shadow-sysroot 4.17.4 T 0.1 *
attr 2.5.2 TN 0.5 *
acl 2.3.2 TN 0.5 *
libcap 2.75 TN 0.5 *
sqlite3 3.48.0 TN 3 *
elfutils 0.192 TN 4 *
libpcre2 10.45 TN 2 *
gmp 6.3.0 TN 2 *
mpfr 4.2.2 TN 1.5 *
libmpc 1.3.1 TN 0.5 *
core-image-minimal 1.0 I 1 *
packagegroup-core-boot 1.0 GM 0.02 *
netbase 6.4 A 0.05 *
os-release 1.0 A 0.01 *
init-ifupdown 1.0 M 0.02 *
initscripts 1.0 T 0.1 *
sysvinit 3.14 T 0.8 *
update-rc.d 0.8+git AN 0.02 *
ca-certificates 20241223 AN 0.5 *
tzdata 2025b A 2
iana-etc 20250328 A 0.3
linux-firmware 20250410 A 300 d
perf 1.0 M 6
lttng-modules 2.13.17 M 2
lttng-tools 2.13.15 T 3
lttng-ust 2.13.9 T 2
babeltrace2 2.1.1 T 2
strace 6.14 T 1.5
gdb 16.2 T 15
gdb-cross-{arch} 16.2 C 20
valgrind 3.24.0 T 20
ltp 20250130 T 20
systemtap 5.2 TN 6
kexec-tools 2.0.31 T 1
makedumpfile 1.7.7 T 1
bash 5.2.37 T 3
coreutils 9.6 TN 4
findutils 4.10.0 TN 1.5
grep 3.11 T 1
sed 4.9 T 1
gawk 5.3.2 TN 2
diffutils 3.12 TN 1
patch 2.7.6 TN 0.8
tar 1.35 TN 2
gzip 1.13 TN 0.5
cpio 2.15 TN 0.8
pigz 2.8 TN 0.2
which 2.23 T 0.1
procps 4.0.5 T 1
psmisc 23.7 T 0.4
sudo 1.9.16p2 T 2
cronie 1.7.2 T 0.4
logrotate 3.22.0 T 0.3
rsync 3.4.1 TN 1
unzip 6.0 TN 0.4
zip 3.0 TN 0.3
bc 1.08.1 TN 0.3
ed 1.21.1 T 0.2
dtc 1.7.2 TN 0.5
file 5.46 TN 2
less 668 T 0.3
vim 9.1.1198 T 6
nano 8.4 T 0.8
openssh 9.9p2 T 3
dropbear 2025.87 T 0.8
curl 8.13.0 TN 2
wget 1.25.0 T 1
git 2.49.0 TN 8
db 5.3.28 TN 3
gdbm 1.24 TN 0.5
libcap-ng 0.8.5 TN 0.3
libseccomp 2.6.0 T 0.5
libarchive 3.7.9 TN 2
lz4 1.10.0 TN 0.4
dnf 4.22.0 TN 2
libdnf 0.73.4 TN 2
librepo 1.19.0 TN 0.5
libsolv 0.7.32 TN 1
libcomps 0.1.21 TN 0.3
createrepo-c 1.2.1 TN 0.5
libmodulemd 2.15.0 TN 0.6
gnupg 2.5.5 TN 4
libgcrypt 1.11.0 TN 2
libgpg-error 1.51 TN 0.5
libassuan 3.0.2 TN 0.3
libksba 1.6.7 TN 0.3
npth 1.8 TN 0.1
gpgme 1.24.2 TN 1.5
nettle 3.10.1 TN 1
gnutls 3.8.9 TN 5
libtasn1 4.20.0 TN 0.4
libunistring 1.3 TN 1.5
libidn2 2.3.8 TN 0.4
p11-kit 0.25.5 TN 1
icu 76-1 TN 15
boost 1.87.0 TN 30
libpng 1.6.47 TN 0.6
libjpeg-turbo 3.1.0 TN 1
tiff 4.7.0 TN 1
libwebp 1.5.0 T 1
giflib 5.2.2 T 0.3
freetype 2.13.3 TN 1
fontconfig 2.16.1 TN 1
harfbuzz 11.0.0 TN 3
pango 1.56.3 T 2
cairo 1.18.4 TN 3
pixman 0.44.2 TN 1
gdk-pixbuf 2.42.12 TN 1.5
gtk+3 3.24.49 T 12
gtk4 4.18.4 T 15
at-spi2-core 2.56.1 T 2
libepoxy 1.5.10 TN 1
mesa 25.0.4 T 30
libdrm 2.4.124 TN 0.6
wayland 1.23.1 TN 0.8
wayland-protocols 1.42 AN 0.3
weston 14.0.1 T 3
libinput 1.28.1 T 1
libevdev 1.13.3 T 0.3
mtdev 1.1.7 T 0.1
libxkbcommon 1.8.1 TN 1
xkeyboard-config 2.44 T 1
xserver-xorg 21.1.16 T 6
libx11 1.8.12 TN 3
libxext 1.3.6 TN 0.3
libxrender 0.9.12 TN 0.2
libxrandr 1.5.4 TN 0.2
libxi 1.8.2 TN 0.3
libxfixes 6.0.1 TN 0.1
libxcb 1.17.0 TN 2
xcb-proto 1.17.0 TN 0.3
xorgproto 2024.1 TN 0.5
libxau 1.0.12 TN 0.1
libxdmcp 1.1.5 TN 0.1
xtrans 1.6.0 TN 0.1
util-macros 1.20.2 TN 0.05
qtbase 6.9.0 TN 60
qtdeclarative 6.9.0 TN 60
webkitgtk 2.48.1 T 300
epiphany 48.2 T 4
gstreamer1.0 1.26.0 T 4
gstreamer1.0-plugins-base 1.26.0 T 6
gstreamer1.0-plugins-good 1.26.0 T 8
gstreamer1.0-plugins-bad 1.26.0 T 15
alsa-lib 1.2.13 T 2
alsa-utils 1.2.13 T 1
pulseaudio 17.0 T 4
pipewire 1.4.2 T 5
bluez5 5.82 T 4
wpa-supplicant 2.11 T 2
iw 6.9 T 0.3
iproute2 6.14.0 T 2
iptables 1.8.11 T 1
nftables 1.1.1 T 1
libnftnl 1.2.8 T 0.3
libmnl 1.0.5 T 0.1
ethtool 6.14 T 0.5
dhcpcd 10.2.2 T 0.5
avahi 0.8 T 2
libdaemon 0.14 T 0.1
nfs-utils 2.8.2 T 1.5
rpcbind 1.2.7 T 0.2
libtirpc 1.3.6 TN 0.5
mtools 4.0.48 N 0.5
dosfstools 4.2 TN 0.3
parted 3.6 TN 1
squashfs-tools 4.6.1 TN 0.5
mtd-utils 2.3.0 TN 1
syslinux 6.04 TN 2
grub-efi 2.12 M 4 d
ovmf 202502 TN 8 d
qemu 9.2.3 TN 20
qemu-system 9.2.3 N 80
kern-tools 0.3+git N 0.2
llvm 20.1.2 TN 100
clang 20.1.2 TN 200
rust 1.86.0 TN 60
rust-llvm 1.86.0 N 120
cargo 1.86.0 N 20
go 1.24.2 T 40
go-native 1.24.2 N 40
go-cross-{tune} 1.24.2 C 40
python3-jinja2 3.1.6 TN 0.5
python3-markupsafe 3.0.2 TN 0.2
python3-pyyaml 6.0.2 TN 0.6
python3-six 1.17.0 TN 0.1
python3-certifi 2025.1.31 TN 0.1
python3-idna 3.10 TN 0.2
python3-urllib3 2.4.0 TN 0.3
python3-requests 2.32.3 TN 0.3
python3-cryptography 44.0.2 TN 6
python3-cffi 1.17.1 TN 0.6
python3-pycparser 2.22 TN 0.3
python3-maturin 1.8.3 N 8
python3-setuptools-rust 1.11.0 N 0.2
python3-setuptools-scm 8.2.0 TN 0.2
python3-hatchling 1.27.0 TN 0.3
python3-pathspec 0.12.1 TN 0.1
python3-pluggy 1.5.0 TN 0.1
python3-trove-classifiers 2025.3.19.19 TN 0.1
python3-calver 2025.3.31 TN 0.05
python3-pip 25.0.1 TN 3
python3-pytest 8.3.5 TN 1
gobject-introspection 1.84.0 TN 6
gtk-doc 1.34.0 TN 1
vala 0.56.18 TN 3
intltool 0.51.0 N 0.2
itstool 2.0.7 N 0.2
docbook-xml-dtd4 4.5 N 0.4
docbook-xsl-stylesheets 1.79.1 N 4
libxslt 1.1.43 TN 1
swig 4.3.0 N 3
re2c 4.1 N 1
gperf 3.1 N 0.3
help2man 1.49.3 N 0.1
unifdef 2.12 N 0.1
patchelf 0.18.0 N 0.3
nasm 2.16.03 N 1
lzop 1.04 N 0.1
opkg 0.7.0 TN 0.5
core-image-base 1.0 I 1.5
core-image-full-cmdline 1.0 I 2
core-image-sato 1.0 I 4
core-image-weston 1.0 I 3
core-image-minimal-initramfs 1.0 I 0.3
packagegroup-base 1.0 GM 0.02
packagegroup-core-full-cmdline 1.0 G 0.02
packagegroup-core-x11 1.0 G 0.02
packagegroup-core-x11-sato 1.0 G 0.02
packagegroup-core-tools-profile 1.0 GM 0.02
packagegroup-core-sdk 1.0 G 0.02
packagegroup-self-hosted 1.0 G 0.02
gcc-crosssdk-{sdksys} 15.1.0 S 100
binutils-crosssdk-{sdksys} 2.44 S 30
zlib 1.3.1 K 1
openssl 3.5.0 K 6
python3 3.13.3 K 15
ncurses 6.5 K 3
readline 8.2.13 K 1.5
libffi 3.4.7 K 0.5
expat 2.7.1 K 0.8
xz 5.8.1 K 1.5
sqlite3 3.48.0 K 3
glibc 2.41+git K 20
libgcc 15.1.0 K 2
gcc-runtime 15.1.0 K 8
cmake 4.0.1 K 15
meson 1.7.0 K 3
ninja 1.12.1 K 1
qemu 9.2.3 K 20
curl 8.13.0 K 2
gettext 0.23.1 K 4
util-linux 2.40.4 K 5
perl 5.40.1 K 10
"""

ISAR_POOL = """
isar-bootstrap-target 1.0 B 1 *
isar-bootstrap-host 1.0 BH 1 *
isar-mmdebstrap-target 1.0 B 1 *
isar-mmdebstrap-host 1.0 BH 1 *
sbuild-chroot-target 1.0 R 1.5 *
sbuild-chroot-host 1.0 RH 1.8 *
buildchroot-target 1.0 R 1.2
buildchroot-host 1.0 RH 1.4
isar-image-base 1.0 IM 1 *
isar-image-debug 1.0 IM 1.6
isar-image-ci 1.0 IM 2
isar-image-installer 1.0 IM 2.5
isar-image-sb 1.0 IM 1.2
isar-initramfs 1.0 IR 0.3
linux-mainline 6.12.23 D 80 *
linux-cip 6.1.128-cip39 D 80
linux-cip-rt 6.1.128-cip39-rt15 D 80
u-boot-qemu-arm64 2025.01 D 5
trusted-firmware-a-stm32mp15 2.12 D 3
optee-os-stm32mp15 4.5.0 D 4
optee-client 4.5.0 D 1
hello 2.10 DN 0.5 *
hello-isar 0.3 D 0.2 *
libhello 0.1 DC 0.2
cowsay 3.03 D 0.3
example-raw 0.3 D 0.05 *
example-module-mainline 0.1 D 0.2
enable-fsck 0.1 D 0.02 *
expand-on-first-boot 1.5 D 0.05 *
sshd-regen-keys 0.4 D 0.02 *
isar-cfg-localepolicy 0.1 D 0.02 *
isar-cfg-rootpw 0.1 D 0.02 *
isar-exclude-docs 0.2 D 0.02
isar-disable-apt-cache 0.1 D 0.02
customizations 0.1 D 0.02 *
kselftest 6.12 D 10
samefile 2.15 D 0.2
prebuilt-deb 1.0 D 0.3
sbsigntool 0.9.5 DN 0.5
efibootguard 0.19 DN 2
swupdate 2024.12 D 4
swupdate-config 0.1 D 0.02
isar-sb-certs 0.1 D 0.02
"""

#: Machines (MACHINE, TUNE_PKGARCH, TARGET_ARCH, TARGET_OS) of the OE flavours.
OE_MACHINES: Dict[str, Tuple[str, str, str]] = {
    "qemux86-64": ("core2-64", "x86_64", "linux"),
    "genericx86-64": ("core2-64", "x86_64", "linux"),
    "qemuarm64": ("cortexa57", "aarch64", "linux"),
    "raspberrypi4-64": ("cortexa72", "aarch64", "linux"),
    "qemuarm": ("cortexa15t2hf-neon", "arm", "linux-gnueabi"),
    "beaglebone-yocto": ("cortexa8hf-neon", "arm", "linux-gnueabi"),
    "qemuriscv64": ("riscv64", "riscv64", "linux"),
}
#: Isar: DISTRO_ARCH values (the "machines" of an Isar mirror); amd64 is the build host.
ISAR_ARCHS = ("arm64", "amd64", "armhf", "i386", "riscv64")

_BUILD_TASKS = ("prepare_recipe_sysroot", "configure", "compile", "install")
_KERNEL_TASKS = (
    "kernel_checkout", "validate_branches", "kernel_metadata", "kernel_configme",
    "kernel_configcheck", "shared_workdir", "compile_kernelmodules", "sizecheck", "strip",
    "bundle_initramfs",
)
_IMAGE_TASKS = (
    "prepare_recipe_sysroot", "rootfs", "image", "image_ext4", "image_tar", "image_wic",
    "image_qa", "populate_lic_deploy", "write_qemuboot_conf",
)
_ISAR_DPKG_TASKS = ("dpkg_source", "deploy_source", "prepare_build", "deploy_deb")
_ISAR_ROOTFS_TASKS = ("rootfs_prepare", "rootfs_configure", "rootfs_postprocess",
                      "rootfs_finalize")


@dataclass(frozen=True)
class Recipe:
    """One recipe of the pool (before it is expanded per machine)."""

    pn: str
    pv: str
    klass: str
    heft: float
    core: bool = False
    kernel: bool = False
    deploy: bool = False


@dataclass
class Instance:
    """A recipe built for one architecture: the unit that shares a build time and a rebuild."""

    pn: str
    pv: str
    pr: str
    archspec: str
    pkgarch: str
    prefix: str  # NATIVELSBSTRING/ or "" (arch tasks only; software-only tasks never have one)
    sw_tasks: Tuple[str, ...]  # software-only spec (hh/hh/sstate:PN::PV:PR::VER:...)
    tasks: Tuple[str, ...]  # arch spec
    heft: float
    native: bool
    version: str
    hh_single: bool = False  # legacy: one hh/ level (before 2020)


def _parse_pool(text: str) -> List[Recipe]:
    recipes = []
    for line in text.strip().splitlines():
        parts = line.split()
        flags = parts[4] if len(parts) > 4 else ""
        recipes.append(Recipe(parts[0], parts[1], parts[2], float(parts[3]), "*" in flags,
                              "k" in flags, "d" in flags))
    return recipes


# --------------------------------------------------------------------------------------------
# Flavours: what differs between OE today, OE honister and Isar
# --------------------------------------------------------------------------------------------


@dataclass
class Profile:
    """Everything flavour-specific the planner needs (OE-core ``sstate.bbclass``, Isar's copy)."""

    flavour: str
    version: str
    ext: str
    vendor: str
    native_prefix: str
    package_formats: Tuple[str, ...]
    archives: Dict[str, SizeModel]
    siginfo: Dict[str, int]
    machines: Tuple[str, ...]
    legacy_cross: bool = False  # cross SSTATE_PKGARCH = BUILD_ARCH_TARGET_ARCH (older OE)
    modern_tasks: bool = True  # recipe_qa, create_spdx* (OE >= 2023)
    hh_single_fraction: float = 0.0


def make_profile(
    flavour: str,
    machines: Optional[Sequence[str]] = None,
    native_prefix: Optional[str] = None,
    package_formats: Optional[Sequence[str]] = None,
    vendor: str = "poky",
) -> Profile:
    """Build the naming profile of a flavour (``oe``, ``isar`` or ``legacy``)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r} (expected one of {', '.join(FLAVOURS)})")
    if flavour == "isar":
        archs = tuple(machines or ("arm64",))
        for a in archs:
            if a not in ISAR_ARCHS:
                raise ValueError(f"unknown Isar DISTRO_ARCH {a!r} ({', '.join(ISAR_ARCHS)})")
        return Profile("isar", "10", "tar.zst", "", native_prefix or "isarnative", (),
                       ISAR_ARCHIVES, OE_SIGINFO, archs)
    mach = tuple(machines or ("qemux86-64",))
    for m in mach:
        if m not in OE_MACHINES:
            raise ValueError(f"unknown machine {m!r} ({', '.join(OE_MACHINES)})")
    fmts = tuple(package_formats or ("rpm",))
    for f in fmts:
        if f not in ("rpm", "ipk", "deb"):
            raise ValueError(f"unknown package format {f!r} (rpm, ipk, deb)")
    if flavour == "oe":
        return Profile("oe", "14", "tar.zst", vendor, native_prefix or "universal", fmts,
                       OE_ARCHIVES, OE_SIGINFO, mach)
    return Profile("legacy", "7", "tgz", vendor, native_prefix or "universal", fmts,
                   OE_ARCHIVES, LEGACY_SIGINFO, mach, legacy_cross=True, modern_tasks=False,
                   hh_single_fraction=0.3)


# --------------------------------------------------------------------------------------------
# Name construction (OE-core generate_sstatefn)
# --------------------------------------------------------------------------------------------


def sstate_name(spec: str, hashv: str, task: str, ext: str) -> str:
    """The archive basename for a spec, shortened like OE when longer than 246 characters.

    Fields 2-4 (archspec, PV, PR) are cut to equal lengths so that the name plus ``.siginfo``
    fits in 254 characters; the siginfo and sig names are this name plus their suffix.
    """
    tail = f"{hashv}_{task}.{ext}"
    fn = spec + tail
    limit = NAME_LIMIT - 8
    if len(fn) <= limit:
        return fn
    c = spec.split(":")
    avail = (limit - len(tail) - len(c[0]) - len(c[1]) - len(c[5]) - len(c[6]) - 7) // 3
    c[2], c[3], c[4] = c[2][:avail], c[3][:avail], c[4][:avail]
    fn = ":".join(c) + tail
    if len(fn) > limit:
        raise ValueError(f"cannot shorten sstate name {fn!r}")
    return fn


def _dir_for(hashv: str, prefix: str, hh_single: bool) -> str:
    levels = hashv[:2] if hh_single else f"{hashv[:2]}/{hashv[2:4]}"
    return f"{prefix}{levels}"


# --------------------------------------------------------------------------------------------
# Expansion of the pool into recipe instances
# --------------------------------------------------------------------------------------------


class _Planner:
    """Turns a seed and a profile into an endless, reproducible stream of recipe instances."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.p = profile
        self.rng = rng
        self.seen_pn: Set[str] = set()
        self.done_keys: Set[Tuple[str, str]] = set()

    # ---- OE ---------------------------------------------------------------------------------

    def _oe_target_tasks(self, kind: str, recipe: Recipe) -> Tuple[Tuple[str, ...], ...]:
        p = self.p
        pkg = ("package", "packagedata", "package_qa",
               *(f"package_write_{f}" for f in p.package_formats))
        modern = ("recipe_qa", "create_spdx", "create_package_spdx") if p.modern_tasks else ()
        sw: Tuple[str, ...] = ("fetch", "unpack", "patch", "populate_lic")
        if kind == "I":
            tasks = (*_IMAGE_TASKS, "image_complete")
            if p.modern_tasks:
                tasks += ("create_rootfs_spdx", "create_image_spdx")
            return (), tasks
        if kind == "G":
            return (), pkg + modern
        build = _BUILD_TASKS + (_KERNEL_TASKS if recipe.kernel else ())
        tasks = (*build, "populate_sysroot", *pkg, "deploy_source_date_epoch", *modern)
        if recipe.deploy:
            tasks += ("deploy",)
        return sw, tasks

    def _oe_native_tasks(self) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        sw = ("fetch", "unpack", "patch", "populate_lic")
        tasks = (*_BUILD_TASKS, "populate_sysroot")
        if self.p.modern_tasks:
            tasks += ("deploy_source_date_epoch", "recipe_qa")
        return sw, tasks

    def _oe_instances(self, r: Recipe) -> Iterator[Instance]:
        p = self.p
        v = p.vendor
        ver = p.version
        sdksys = f"x86_64-{v}sdk-linux"
        fmt = {"sdksys": sdksys}
        seen: Set[str] = set()

        def inst(pn: str, archspec: str, pkgarch: str, native: bool,
                 tasks: Tuple[Tuple[str, ...], Tuple[str, ...]], heft: float) -> Instance:
            sw, at = tasks
            if pn in seen or (pn, "sw") in self.done_keys:
                sw = ()  # software-only tasks are shared across architectures
            self.done_keys.add((pn, "sw"))
            seen.add(pn)
            return Instance(pn, r.pv, "r0", archspec, pkgarch,
                            f"{p.native_prefix}/" if native else "", sw, at, heft, native, ver)

        k = r.klass
        machines = [OE_MACHINES[m] + (m,) for m in p.machines]
        if k in ("T", "TN"):
            for tune in dict.fromkeys(m[0] for m in machines):
                os_ = next(m[2] for m in machines if m[0] == tune)
                yield inst(r.pn, f"{tune}-{v}-{os_}", tune, False,
                           self._oe_target_tasks("T", r), r.heft)
        if k in ("N", "TN", "AN"):
            pn = r.pn if r.pn.endswith("-native") else f"{r.pn}-native"
            yield inst(pn, "x86_64-linux", "x86_64", True, self._oe_native_tasks(), r.heft)
        if k in ("A", "AN"):
            yield inst(r.pn, f"all-{v}-linux", "allarch", False,
                       self._oe_target_tasks("T", r), r.heft)
        if k == "G":
            yield inst(r.pn, f"all-{v}-linux", "allarch", False,
                       self._oe_target_tasks("G", r), r.heft)
        if k in ("M", "I", "GM"):
            for _tune, _arch, os_, mname in machines:
                march = mname.replace("-", "_")
                kind = {"M": "T", "I": "I", "GM": "G"}[k]
                yield inst(r.pn, f"{march}-{v}-{os_}", march, False,
                           self._oe_target_tasks(kind, r), r.heft)
        if k == "C":
            for tune, arch, os_, _m in machines:
                pn = r.pn.format(arch=arch, tune=tune)
                if pn in seen:
                    continue
                pkgarch = f"x86_64_{arch}" if p.legacy_cross else "x86_64"
                yield inst(pn, f"x86_64-{v}-{os_}", pkgarch, True,
                           self._oe_native_tasks(), r.heft)
        if k == "S":
            yield inst(r.pn.format(**fmt), f"x86_64-{v}sdk-linux", "x86_64_x86_64_linux", True,
                       self._oe_native_tasks(), r.heft)
        if k == "K":
            yield inst(f"nativesdk-{r.pn}", f"x86_64-nativesdk-{v}sdk-linux", "x86_64_linux",
                       False, self._oe_target_tasks("T", r), r.heft)
        if k == "P":
            yield inst(r.pn, f"all-{v}-linux", "allarch", False,
                       (("fetch", "unpack", "patch", "preconfigure"), ()), r.heft)

    # ---- Isar -------------------------------------------------------------------------------

    def _isar_instances(self, r: Recipe) -> Iterator[Instance]:
        p = self.p
        ver = p.version
        sw = ("fetch", "unpack", "patch")
        k = r.klass
        targets = list(p.machines)

        def inst(pn: str, arch: str, native: bool, sw_: Tuple[str, ...],
                 tasks: Tuple[str, ...]) -> Instance:
            if (pn, "sw") in self.done_keys:
                sw_ = ()
            self.done_keys.add((pn, "sw"))
            return Instance(pn, r.pv, "r0", f"{arch}-isar", arch,
                            f"{p.native_prefix}/" if native else "", sw_, tasks, r.heft,
                            native, ver)

        dpkg = (*_ISAR_DPKG_TASKS[:3], "dpkg_build", *_ISAR_DPKG_TASKS[3:])
        if k in ("D", "DN", "DC"):
            for arch in targets:
                yield inst(r.pn, arch, False, sw, dpkg)
            if k == "DN":
                yield inst(f"{r.pn}-native", "amd64", True, sw, dpkg)
            if k == "DC" and "arm64" in targets:
                yield inst(f"{r.pn}-compat", "armhf", False, sw, dpkg)
        elif k in ("B", "R", "IM", "IR"):
            tasks: Tuple[str, ...]
            if k == "B":
                tasks = ("apt_config_prepare", "bootstrap")
            elif k == "R":
                tasks = (*_ISAR_ROOTFS_TASKS, "rootfs_install")
            elif k == "IM":
                tasks = (*_ISAR_ROOTFS_TASKS, "rootfs_install", "copy_boot_files",
                         "image_tools", "image_wic")
            else:
                tasks = (*_ISAR_ROOTFS_TASKS, "rootfs_install", "generate_initramfs")
            for arch in targets:
                yield inst(r.pn, arch, False, ("fetch", "unpack"), tasks)
        elif k in ("BH", "RH"):
            tasks = (("apt_config_prepare", "bootstrap") if k == "BH"
                     else (*_ISAR_ROOTFS_TASKS, "rootfs_install"))
            yield inst(r.pn, "amd64", False, ("fetch", "unpack"), tasks)

    # ---- synthetic recipes ------------------------------------------------------------------

    _SYL = ("ar", "bel", "cor", "dan", "el", "fim", "gor", "hex", "ix", "jun", "kel", "lum",
            "mor", "nex", "ol", "pra", "qui", "ros", "sil", "tan", "ur", "vex", "wal", "xen",
            "yor", "zan", "bri", "cla", "dro", "flu", "gra", "pli", "sto", "tri", "vol", "zep")
    _OE_PRE = ("lib", "lib", "lib", "", "", "", "", "python3-", "python3-", "perl-",
               "gstreamer1.0-plugins-", "xf86-video-", "font-", "kernel-module-", "go-",
               "rust-", "nodejs-", "packagegroup-")

    def _synthetic(self) -> Recipe:
        """Plausible extra recipes once the pool is used up (``libvexor``, ``python3-kel``)."""
        rng = self.rng
        while True:
            if self.p.flavour == "isar":
                pre = rng.choice(("", "", "lib", "python3-", "acme-", "isar-cfg-", "linux-"))
            else:
                pre = rng.choice(self._OE_PRE)
            stem = "".join(rng.choice(self._SYL) for _ in range(rng.randint(2, 3)))
            pn = f"{pre}{stem}"
            if rng.random() < 0.15:
                pn += rng.choice(("-utils", "-tools", "-dev", "-common", "-extra", "2", "3"))
            long_name = rng.random() < 0.004
            if long_name:  # a few names long enough to be shortened (meta layers do this)
                pn += "-" + "-".join(rng.choice(self._SYL) * 2 for _ in range(8))
            if pn not in self.seen_pn:
                break
        self.seen_pn.add(pn)
        pv = self._version(long_name)
        heft = rng.lognormvariate(0.0, 1.0)
        if self.p.flavour == "isar":
            klass = "DN" if rng.random() < 0.08 else "D"
            return Recipe(pn, pv, klass, heft)
        if pn.startswith("packagegroup-"):
            return Recipe(pn, "1.0", rng.choice(("G", "GM")), 0.02)
        if pn.startswith("kernel-module-"):
            return Recipe(pn, pv, "M", heft * 0.3)
        if pn.startswith("font-"):
            return Recipe(pn, pv, "A", heft)
        x = rng.random()
        klass = "T" if x < 0.62 else "TN" if x < 0.88 else "N" if x < 0.94 else "A"
        return Recipe(pn, pv, klass, heft)

    def _version(self, long_name: bool) -> str:
        rng = self.rng
        pv = ".".join(str(rng.randint(0, 12)) for _ in range(rng.choice((2, 3, 3))))
        if long_name:
            return pv + "+git" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
        if rng.random() < 0.15:
            if self.p.flavour == "legacy":
                return pv + "+gitAUTOINC+" + "".join(rng.choice("0123456789abcdef")
                                                     for _ in range(10))
            return pv + "+git"
        return pv

    # ---- the stream -------------------------------------------------------------------------

    def recipes(self) -> Iterator[Recipe]:
        """Core recipes first (every real build has a toolchain), then the rest, then more."""
        pool = _parse_pool(ISAR_POOL if self.p.flavour == "isar" else OE_POOL)
        for r in pool:
            self.seen_pn.add(r.pn)
        core = [r for r in pool if r.core]
        rest = [r for r in pool if not r.core]
        self.rng.shuffle(core)
        self.rng.shuffle(rest)
        yield from core
        yield from rest
        while True:
            yield self._synthetic()

    def instances(self) -> Iterator[Instance]:
        expand = self._isar_instances if self.p.flavour == "isar" else self._oe_instances
        for r in self.recipes():
            for instance in expand(r):
                key = (instance.pn, instance.archspec)
                if key in self.done_keys:
                    continue  # allarch/native already built for an earlier machine
                self.done_keys.add(key)
                if self.p.hh_single_fraction and self.rng.random() < self.p.hh_single_fraction:
                    instance.hh_single = True
                    instance.version = "3"  # single hh/ level: caches from before 2020
                    if instance.prefix:
                        instance.prefix = "universal-4.8/"
                yield instance


# --------------------------------------------------------------------------------------------
# Planning: names, sizes, mtimes
# --------------------------------------------------------------------------------------------


def _hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma)) if sigma > 0 else median


def scale_size(size: int, size_scale: float) -> int:
    """Scale a real archive size: up to 4 KiB unchanged, only the part above is multiplied.

    Continuous and monotonic, so the shape of the distribution survives (no spike at the
    floor) and the many tiny archives keep their real sizes.
    """
    if size <= SCALE_FLOOR or size_scale == 1.0:
        return size
    return SCALE_FLOOR + int((size - SCALE_FLOOR) * size_scale)


def _archive_size(rng: random.Random, profile: Profile, inst: Instance, task: str,
                  size_scale: float) -> int:
    model = profile.archives.get(task)
    if task == "populate_sysroot" and inst.native:
        model = NATIVE_POPULATE_SYSROOT
    if model is None:
        model = SizeModel(100 * KiB, 1.0)
    real = _lognormal(rng, model.median * inst.heft ** model.heft_exp, model.sigma)
    real = min(max(real, model.floor), model.cap)
    return scale_size(int(real), size_scale)


def _siginfo_size(rng: random.Random, profile: Profile, task: str, complexity: float) -> int:
    base = profile.siginfo.get(task, DEFAULT_SIGINFO)
    if profile.flavour == "legacy" and task not in profile.siginfo:
        base = int(DEFAULT_SIGINFO * 2.4)  # pickles are ~2.4x the zstd JSON
    size = base * complexity * math.exp(rng.gauss(0.0, 0.08))
    floor = LEGACY_SIGINFO_MIN if profile.flavour == "legacy" else SIGINFO_MIN
    return int(min(max(size, floor), SIGINFO_MAX))


def _build_time(rng: random.Random, now: int, spread_days: float, order: int,
                count_hint: int, older: bool) -> int:
    """When a recipe instance was built.

    Without a spread the whole cache is one build that finished at ``now`` and took an hour
    (instances in build order); with a spread each instance is built at a uniform random time
    in the last DAYS days (one-level legacy instances in the older half), so that a cleaning
    threshold of T days expires about ``1 - T/DAYS`` of the files.
    """
    if spread_days <= 0:
        return now - 3600 + int(3000 * min(order, count_hint) / max(count_hint, 1))
    span = spread_days * 86400
    lo = now - span
    hi = now - span / 2 if older else now - 600
    return int(rng.uniform(lo, max(lo, hi)))


def plan(
    files: int,
    *,
    seed: int = 0,
    flavour: str = "oe",
    size_scale: float = DEFAULT_SIZE_SCALE,
    sig_fraction: float = DEFAULT_SIG_FRACTION,
    temp: Optional[int] = None,
    junk: int = 0,
    mtime_spread: float = 0.0,
    now: Optional[int] = None,
    machines: Optional[Sequence[str]] = None,
    native_prefix: Optional[str] = None,
    package_formats: Optional[Sequence[str]] = None,
) -> List[Entry]:
    """Plan a cache of exactly ``files`` files (sstate files, ``temp`` leftovers, ``junk``).

    Nothing is written; :func:`write_cache` does that. The same arguments (including ``now``)
    give the same list. ``temp`` defaults to one leftover per 2,000 files.
    """
    if files < 0 or junk < 0 or (temp is not None and temp < 0):
        raise ValueError("counts must not be negative")
    if not 0.0 <= sig_fraction <= 1.0:
        raise ValueError("sig_fraction must be within 0..1")
    if size_scale <= 0:
        raise ValueError("size_scale must be positive")
    profile = make_profile(flavour, machines, native_prefix, package_formats)
    rng = random.Random(f"gencache:{seed}")
    now = int(time.time()) if now is None else int(now)
    n_temp = files // 2000 if temp is None else temp
    n_junk = junk
    if n_temp + n_junk > files:
        raise ValueError(f"{n_temp} temp + {n_junk} junk files do not fit in {files}")
    budget = files - n_temp - n_junk
    entries: List[Entry] = []
    planner = _Planner(profile, rng)
    order = 0
    hint = max(budget // 12, 1)  # about 12 files per instance, for the one-build time line
    ext = profile.ext
    inst_iter = planner.instances()
    while len(entries) < budget:
        inst = next(inst_iter)
        t = _build_time(rng, now, mtime_spread, order, hint, inst.hh_single)
        order += 1
        complexity = math.exp(rng.gauss(math.log(1.3), 0.45))
        groups = [(task, True) for task in inst.sw_tasks] + [(task, False) for task in inst.tasks]
        for task, sw in groups:
            if len(entries) >= budget:
                break
            hv = _hash(rng)
            if sw:
                spec = f"sstate:{inst.pn}::{inst.pv}:{inst.pr}::{inst.version}:"
                prefix = ""
            else:
                spec = (f"sstate:{inst.pn}:{inst.archspec}:{inst.pv}:{inst.pr}:"
                        f"{inst.pkgarch}:{inst.version}:")
                prefix = inst.prefix
            name = sstate_name(spec, hv, task, ext)
            d = _dir_for(hv, prefix, inst.hh_single)
            t += rng.randint(5, 240)
            t_task = min(t, now)
            entries.append(Entry(f"{d}/{name}.siginfo", _siginfo_size(rng, profile, task,
                                                                       complexity),
                                 max(t_task - rng.randint(0, 3), 0), "siginfo"))
            if task not in profile.archives:
                continue  # not an sstate task: only the signature data is written
            if sig_fraction and rng.random() < sig_fraction and len(entries) < budget:
                entries.append(Entry(f"{d}/{name}.sig", SIG_SIZE, t_task, "sig"))
            if len(entries) < budget:
                size = _archive_size(rng, profile, inst, task, size_scale)
                entries.append(Entry(f"{d}/{name}", size, t_task, "archive"))
    entries.extend(_temp_entries(rng, profile, entries, n_temp, now, mtime_spread))
    entries.extend(_junk_entries(rng, n_junk, now, mtime_spread))
    return entries


def _random_chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _temp_entries(rng: random.Random, profile: Profile, planned: Sequence[Entry], count: int,
                  now: int, spread: float) -> List[Entry]:
    """Leftovers of interrupted writes: ``<archive>.XXXXXXXX`` (mktemp) and ``sigtask.*``.

    An archive leftover is a planned archive's name with another hash: the build that wrote
    it was interrupted, so its final name is not in the cache.
    """
    out: List[Entry] = []
    archives = [e for e in planned if e.kind == "archive"]
    for _ in range(count):
        hv = _hash(rng)
        d = _dir_for(hv, "", False)
        t = now - int(rng.uniform(0, max(spread, 1.0) * 86400))
        if archives and rng.random() < 0.6:
            model = rng.choice(archives)
            old_dir, base = _split(model.path)
            old_hash = base.rsplit(":", 1)[1].split("_", 1)[0]
            new_dir = _rehash_dir(old_dir, old_hash, hv)
            name = base.replace(f":{old_hash}_", f":{hv}_")
            out.append(Entry(f"{new_dir}/{name}.{_random_chars(rng, _MKTEMP_CHARS, 8)}",
                             int(model.size * rng.random()), t, "temp"))
        else:
            out.append(Entry(f"{d}/sigtask.{_random_chars(rng, _PYTEMP_CHARS, 8)}",
                             _siginfo_size(rng, profile, "compile", 1.3), t, "temp"))
    return out


def _rehash_dir(d: str, old_hash: str, new_hash: str) -> str:
    """The directory of a file whose hash changes, keeping its prefix and its hh layout."""
    parts = d.split("/")
    if len(parts) >= 2 and parts[-2] == old_hash[:2] and parts[-1] == old_hash[2:4]:
        parts[-2:] = [new_hash[:2], new_hash[2:4]]
    elif parts and parts[-1] == old_hash[:2]:
        parts[-1] = new_hash[:2]
    return "/".join(parts)


_JUNK_NAMES = ("README.txt", "index.html", ".DS_Store", "robots.txt", "notes.md",
               "sstate-cache.tar", "core", "lost.tar.zst", "sstate:broken.tar.zst",
               "upload.log", "Thumbs.db", "backup.tgz")


def _junk_entries(rng: random.Random, count: int, now: int, spread: float) -> List[Entry]:
    """Files that are not sstate objects (a README, an index.html, a stray backup)."""
    out: List[Entry] = []
    used: Set[str] = set()
    for i in range(count):
        base = rng.choice(_JUNK_NAMES)
        d = _dir_for(_hash(rng), "", False) + "/" if rng.random() < 0.5 else ""
        path = f"{d}{base}"
        if path in used:
            path = f"{d}{i}-{base}"
        used.add(path)
        t = now - int(rng.uniform(0, max(spread, 1.0) * 86400))
        out.append(Entry(path, int(_lognormal(rng, 4 * KiB, 1.2)), t, "unknown"))
    return out


# --------------------------------------------------------------------------------------------
# Second build
# --------------------------------------------------------------------------------------------


def _split(path: str) -> Tuple[str, str]:
    d, _, base = path.rpartition("/")
    return d, base


def _archive_key(path: str) -> Optional[str]:
    for suffix in (".siginfo", ".sig"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    base = path.rpartition("/")[2]
    return path if base.startswith("sstate:") else None


def derive(
    first: Union[Sequence[Entry], str, os.PathLike],
    changed_fraction: float,
    *,
    seed: int = 1,
    now: Optional[int] = None,
    keep_sw_probability: float = 0.7,
) -> List[Entry]:
    """A second build from a first: most files kept, the rest replaced by new hashes.

    Like an incremental build, changes come per recipe: recipes are picked at random until
    about ``changed_fraction`` of the first build's sstate files are replaced. A picked recipe
    gets new hashes for its architecture tasks; its software-only tasks (fetch, unpack, patch,
    populate_lic) keep theirs with ``keep_sw_probability`` (a dependency changed, not the
    source). New files get times in the hour before ``now`` (one rebuild). Temporary and
    unknown files of the first build are not carried over.

    ``first`` is a list of entries or the path of a manifest.
    """
    if not 0.0 <= changed_fraction <= 1.0:
        raise ValueError("changed_fraction must be within 0..1")
    entries = load_manifest(first) if isinstance(first, (str, os.PathLike)) else list(first)
    rng = random.Random(f"gencache-derive:{seed}")
    now = int(time.time()) if now is None else int(now)
    sstate = [e for e in entries if e.kind in ("archive", "siginfo", "sig")]
    # group files by archive, archives by recipe (PN), remembering first-seen order
    by_recipe: Dict[str, Dict[str, List[Entry]]] = {}
    for e in sstate:
        key = _archive_key(e.path)
        if key is None:
            continue
        base = key.rpartition("/")[2]
        fields = base.split(":")
        pn = fields[1] if len(fields) > 1 else base
        by_recipe.setdefault(pn, {}).setdefault(key, []).append(e)
    target = changed_fraction * len(sstate)
    names = list(by_recipe)
    rng.shuffle(names)
    replace: Set[str] = set()
    changed = 0
    for pn in names:
        if changed >= target:
            break
        picked = []
        for key, members in by_recipe[pn].items():
            base = key.rpartition("/")[2]
            sw = base.split(":")[2] == "" and base.split(":")[-3] == ""
            if sw and rng.random() < keep_sw_probability:
                continue
            picked.append((key, len(members)))
        n = sum(c for _, c in picked)
        if n == 0:
            continue
        if changed + n > target and (changed + n - target) > (target - changed):
            continue  # this recipe would overshoot more than it helps; try a smaller one
        replace.update(key for key, _ in picked)
        changed += n
    out: List[Entry] = []
    start = now - 3600
    for pn in by_recipe:
        for key, members in by_recipe[pn].items():
            if key not in replace:
                out.extend(members)
                continue
            d, base = _split(key)
            old_hash = base.rsplit(":", 1)[1].split("_", 1)[0]
            new_hash = _hash(rng)
            t = start + rng.randint(1, 3600)
            new_base = base.replace(f":{old_hash}_", f":{new_hash}_")
            new_dir = _rehash_dir(d, old_hash, new_hash)
            for m in members:
                suffix = m.path[len(key):]
                size = m.size
                if m.kind == "archive" and size > SCALE_FLOOR:
                    size = SCALE_FLOOR + int((size - SCALE_FLOOR) * math.exp(rng.gauss(0.0, 0.05)))
                elif m.kind == "siginfo":
                    floor = (LEGACY_SIGINFO_MIN if m.path.endswith(".tgz.siginfo")
                             else SIGINFO_MIN)
                    size = int(min(max(size * math.exp(rng.gauss(0.0, 0.02)), floor),
                                   SIGINFO_MAX))
                out.append(Entry(f"{new_dir}/{new_base}{suffix}", size,
                                 t - (1 if m.kind == "siginfo" else 0), m.kind))
    return out


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

# Real content, so that verify, analyze and lint read what they would read on a mirror: every
# archive is a valid compressed tar stream (zstd, or gzip for .tgz) and every .siginfo a
# readable signature whose recorded hashes are those recomputed from its content, whose task is
# the one in its name and whose unihash is the hash in its name (hash equivalence, as OE
# builds run). Each file has exactly its planned size: the compressed stream is followed by a
# zstd skippable frame (which pzstd writes too) or carries a gzip header extra field, and a
# pickled legacy signature holds a padding variable outside its task's dependencies.

_SKIPPABLE = (0x184D2A50).to_bytes(4, "little")
_SIG_MAGIC = b"\x89\x02\x1c\x04"  # an OpenPGP signature packet


def _skippable(n: int) -> bytes:
    """A zstd skippable frame of exactly ``n`` bytes (n >= 8): decoders pass over it."""
    return _SKIPPABLE + (n - 8).to_bytes(4, "little") + bytes(n - 8)


def _tar(payload: Optional[bytes], name: str) -> bytes:
    """A tar stream with one member holding ``payload``, or an empty archive (None)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if payload is not None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _fit(size: int, make: Any, min_pad: int) -> Tuple[bytes, int]:
    """``(make(n), k)`` with ``len(make(n)) + k == size`` and ``k`` 0 or at least ``min_pad``:
    ``make(n)`` is a stream holding ``n`` random bytes (``n = -1``: the smallest stream)."""
    n = max(0, size - 2048)
    tried: Set[int] = set()
    while n not in tried:
        tried.add(n)
        data = make(n)
        k = size - len(data)
        if k == 0 or k >= min_pad:
            return data, k
        n = max(-1, n - (min_pad - k) - 16) if n >= 0 else n
    raise ValueError(f"cannot write a valid stream of exactly {size} bytes")


def _zstd_tar(size: int, rng: random.Random, member: str) -> bytes:
    import zstandard

    variants = [zstandard.ZstdCompressor(level=3, write_checksum=c, write_content_size=w)
                for c in (True, False) for w in (True, False)]

    def make(n: int) -> bytes:
        tar = _tar(None if n < 0 else rng.randbytes(n), member)
        if n >= 0:
            return variants[0].compress(tar)
        # the smallest archives (34 bytes): the variant whose size leaves a valid padding
        frames = [v.compress(tar) for v in variants]
        return next((f for f in frames if size - len(f) == 0 or size - len(f) >= 8),
                    frames[0])

    data, k = _fit(size, make, 8)
    return data + (_skippable(k) if k else b"")


def _gzip_tar(size: int, rng: random.Random, member: str) -> bytes:
    """A gzip member whose header's extra field (one ``SM`` subfield) makes up the size."""
    def body(n: int) -> bytes:
        tar = _tar(None if n < 0 else rng.randbytes(n), member)
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        return (comp.compress(tar) + comp.flush() + zlib.crc32(tar).to_bytes(4, "little")
                + (len(tar) & 0xFFFFFFFF).to_bytes(4, "little"))

    data, k = _fit(size - 12, body, 4)
    if k > 0xFFFF:
        raise ValueError(f"cannot write a gzip stream of exactly {size} bytes")
    extra = b"SM" + (k - 4).to_bytes(2, "little") + bytes(k - 4) if k else b""
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\x03" + k.to_bytes(2, "little")
    return header + extra + data


def _signature(entry: Entry, size: int, rng: random.Random) -> bytes:
    """A real signature of the task in the entry's name, exactly ``size`` bytes long (the
    smallest planned sizes get a task without dependencies)."""
    try:
        return _signature_of(entry, size, rng, with_deps=True)
    except ValueError:
        return _signature_of(entry, size, rng, with_deps=False)


def _signature_of(entry: Entry, size: int, rng: random.Random, *, with_deps: bool) -> bytes:
    _add_src_path()
    from sstate_mirror.naming import parse_name
    from sstate_mirror.signatures.hashes import compute_basehash, compute_taskhash
    from sstate_mirror.signatures.model import Encoding
    from sstate_mirror.signatures.reader import signature_from_dict

    name = parse_name(entry.path.rsplit("/", 1)[1])
    assert name is not None
    legacy = entry.path.endswith(".tgz.siginfo")
    task = "do_" + name.task
    deps = ({f"{name.pn}:do_prepare_recipe_sysroot": f"{rng.getrandbits(256):064x}"}
            if with_deps else {})
    raw: Dict[str, Any] = {
        "task": task,
        "basehash_ignore_vars": {"PATH", "TMPDIR"},
        "taskhash_ignore_tasks": None,
        "taskdeps": {"PN", "PV", "PR", task + "[func]"},
        "gendeps": {"PN": set(), "PV": set(), "PR": set(), task + "[func]": set()},
        "varvals": {task: f"    bbnote building {name.pn}\n", "PN": name.pn, "PV": name.pv,
                    "PR": name.pr, task + "[func]": "1"},
        "runtaskdeps": sorted(deps),
        "file_checksum_values": [],
        "runtaskhashes": deps,
        "basehash": "",
        "taskhash": "",
        "unihash": name.hash,
    }
    sig = signature_from_dict(raw, Encoding.ZSTD_JSON if not legacy else Encoding.PICKLE)
    raw["basehash"] = sig.basehash = compute_basehash(sig) or ""
    raw["taskhash"] = compute_taskhash(sig)
    if legacy:
        import pickle

        raw["basewhitelist"] = raw.pop("basehash_ignore_vars")
        raw["taskwhitelist"] = raw.pop("taskhash_ignore_tasks")

        # a padding variable in no task's dependencies (so in no hash) makes up the size; its
        # name grows by a character where the value's length field would jump a width
        for extra in range(4):
            pad_name = "GENCACHE_PADDING" + "_" * extra
            length, seen = 0, set()
            while length >= 0 and length not in seen:
                seen.add(length)
                raw["varvals"][pad_name] = "x" * length
                data = pickle.dumps(raw, protocol=4)
                if len(data) == size:
                    return data
                length += size - len(data)
            del raw["varvals"][pad_name]
        raise ValueError(f"{entry.path}: cannot write a signature of exactly {size} bytes")
    import zstandard

    text = json.dumps(_json_sets(raw), sort_keys=True, separators=(",", ":")).encode()
    frame = zstandard.ZstdCompressor(level=19).compress(text)
    if size - len(frame) < 8:
        raise ValueError(f"{entry.path}: {size} bytes is too small for a signature")
    return frame + _skippable(size - len(frame))


def _json_sets(value: Any) -> Any:
    """bitbake's JSON for sets: ``{"_set_object": [...]}``."""
    if isinstance(value, (set, frozenset)):
        return {"_set_object": sorted(value)}
    if isinstance(value, dict):
        return {k: _json_sets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_sets(v) for v in value]
    return value


def content(entry: Entry) -> bytes:
    """The bytes of a planned file: real archives and signatures, random other files."""
    rng = random.Random(f"gencache-content:{entry.path}")
    if entry.kind == "archive":
        member = entry.path.rsplit("/", 1)[-1].split(":", 2)[1] + "/data"
        if entry.path.endswith(".tgz"):
            return _gzip_tar(entry.size, rng, member)
        return _zstd_tar(entry.size, rng, member)
    if entry.kind == "siginfo":
        return _signature(entry, entry.size, rng)
    if entry.kind == "sig":
        return (_SIG_MAGIC + rng.randbytes(entry.size))[: entry.size]
    return rng.randbytes(entry.size)


class _Writer:
    """Writes entries into a directory; safe to call from several threads."""

    def __init__(self, root: Path, sparse: bool, seed: int) -> None:
        self.root = root
        self.sparse = sparse
        self.utime_fd = os.utime in os.supports_fd

    def write(self, entries: Sequence[Entry]) -> int:
        written = 0
        root = str(self.root)
        for e in entries:
            path = f"{root}/{e.path}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                if self.sparse:
                    os.ftruncate(fd, e.size)
                else:
                    data = content(e)
                    assert len(data) == e.size, (e.path, len(data), e.size)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    written += e.size
                ns = e.mtime * 1_000_000_000
                if self.utime_fd:
                    os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)
            if not self.utime_fd:
                os.utime(path, ns=(ns, ns))
        return written


def write_cache(
    out_dir: Union[str, os.PathLike],
    entries: Sequence[Entry],
    *,
    sparse: bool = False,
    seed: int = 0,
    jobs: Optional[int] = None,
) -> int:
    """Create the planned files under ``out_dir``; return the bytes written (0 when sparse).

    ``sparse`` only sets each file's size (``truncate``): no data blocks, no disk use, for
    benchmarks that only look at names, sizes and times. Several threads write at once
    because creating files is system calls, which run outside the interpreter lock.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    dirs = sorted({e.path.rpartition("/")[0] for e in entries} - {""})
    for d in dirs:
        os.makedirs(root / d, exist_ok=True)
    writer = _Writer(root, sparse, seed)
    jobs = jobs or min(8, 2 * (os.cpu_count() or 1))
    chunk = 256
    chunks = [entries[i: i + chunk] for i in range(0, len(entries), chunk)]
    if jobs <= 1 or len(chunks) <= 1:
        return sum(writer.write(c) for c in chunks)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return sum(pool.map(writer.write, chunks))


def save_manifest(path: Union[str, os.PathLike], entries: Sequence[Entry]) -> None:
    """Write ``[{"path", "size", "mtime", "kind"}, ...]`` (JSON) for the benchmark harness."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump([e._asdict() for e in entries], f, separators=(",", ":"))
        f.write("\n")


def load_manifest(path: Union[str, os.PathLike]) -> List[Entry]:
    """Read a manifest written by :func:`save_manifest` (``[path, size, mtime]`` lists too)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for item in data:
        if isinstance(item, dict):
            out.append(Entry(item["path"], int(item["size"]), int(item["mtime"]),
                             item.get("kind") or _guess_kind(item["path"])))
        else:
            out.append(Entry(item[0], int(item[1]), int(item[2]), _guess_kind(item[0])))
    return out


def _guess_kind(path: str) -> str:
    try:
        from sstate_mirror.naming import classify
    except ImportError:  # pragma: no cover - only without the project on the path
        _add_src_path()
        from sstate_mirror.naming import classify
    return classify(path).value


def _add_src_path() -> None:
    src = Path(__file__).resolve().parent.parent / "src"
    if src.is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))


def generate(
    out_dir: Union[str, os.PathLike],
    files: int,
    *,
    sparse: bool = False,
    manifest: Optional[Union[str, os.PathLike]] = None,
    jobs: Optional[int] = None,
    **plan_args: Any,
) -> List[Entry]:
    """Plan and write a cache in one call (``plan_args`` go to :func:`plan`)."""
    entries = plan(files, **plan_args)
    write_cache(out_dir, entries, sparse=sparse, seed=int(plan_args.get("seed", 0)), jobs=jobs)
    if manifest is not None:
        save_manifest(manifest, entries)
    return entries


def verify(entries: Sequence[Entry]) -> List[str]:
    """Entries the project's naming module classifies otherwise than intended (should be [])."""
    _add_src_path()
    from sstate_mirror.naming import make_artifact

    bad = []
    for e in entries:
        kind = make_artifact(e.path, e.size, e.mtime).kind.value
        if kind != e.kind:
            bad.append(f"{e.path}: {kind}, meant {e.kind}")
    return bad


def summary(entries: Sequence[Entry]) -> str:
    """One line per kind: count and total size."""
    kinds: Dict[str, List[int]] = {}
    for e in entries:
        k = kinds.setdefault(e.kind, [0, 0])
        k[0] += 1
        k[1] += e.size
    total = sum(e.size for e in entries)
    lines = [f"{len(entries)} files, {total / MiB:.1f} MiB"]
    for kind in ("archive", "siginfo", "sig", "temp", "unknown"):
        if kind in kinds:
            c, s = kinds[kind]
            lines.append(f"  {kind:8} {c:8} files {s / MiB:10.1f} MiB")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="Generate a realistic synthetic sstate cache (reproducible from a seed).")
    ap.add_argument("out_dir", help="directory to create the cache in (must be empty)")
    ap.add_argument("--files", type=int, help="total number of files, leftovers included")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flavour", choices=FLAVOURS, default="oe")
    ap.add_argument("--size-scale", type=float, default=DEFAULT_SIZE_SCALE,
                    help="multiply the part of archive sizes above 4 KiB by F "
                         f"(default {DEFAULT_SIZE_SCALE}; 1 = real sizes)")
    ap.add_argument("--sparse", action="store_true",
                    help="set sizes with truncate only (no data, no disk use)")
    ap.add_argument("--mtime-spread", type=float, default=0.0, metavar="DAYS",
                    help="spread build times over the last DAYS days (default: one build, now)")
    ap.add_argument("--now", type=int, help="the 'now' of the time line (POSIX seconds)")
    ap.add_argument("--manifest", help="write a JSON list of {path, size, mtime, kind}")
    ap.add_argument("--sig-fraction", type=float, default=DEFAULT_SIG_FRACTION,
                    help=f"share of archives with a .sig (default {DEFAULT_SIG_FRACTION})")
    ap.add_argument("--temp", type=int, help="temporary leftovers (default: files/2000)")
    ap.add_argument("--junk", type=int, default=0, help="unknown files (README, index.html...)")
    ap.add_argument("--machines", help="comma-separated MACHINEs (oe, legacy: "
                    f"{','.join(OE_MACHINES)}) or DISTRO_ARCHs (isar: {','.join(ISAR_ARCHS)})")
    ap.add_argument("--package-formats", default="rpm", help="rpm,ipk,deb (oe, legacy)")
    ap.add_argument("--native-prefix", help="NATIVELSBSTRING (default universal / isarnative)")
    ap.add_argument("--derive-from", metavar="MANIFEST",
                    help="write a second build derived from this manifest instead")
    ap.add_argument("--changed", type=float, default=0.1,
                    help="with --derive-from: fraction of files with new hashes (default 0.1)")
    ap.add_argument("--jobs", type=int, help="writer threads (default 2 x CPUs, at most 8)")
    ap.add_argument("--force", action="store_true", help="allow a non-empty OUT_DIR")
    ap.add_argument("--verify", action="store_true",
                    help="check every name with sstate_mirror.naming before writing")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        ap.error(f"{out} is not empty (use --force to write into it)")
    started = time.monotonic()
    try:
        if args.derive_from:
            entries = derive(args.derive_from, args.changed, seed=args.seed, now=args.now)
        else:
            if args.files is None:
                ap.error("--files is required (or --derive-from)")
            entries = plan(
                args.files, seed=args.seed, flavour=args.flavour, size_scale=args.size_scale,
                sig_fraction=args.sig_fraction, temp=args.temp, junk=args.junk,
                mtime_spread=args.mtime_spread, now=args.now,
                machines=args.machines.split(",") if args.machines else None,
                native_prefix=args.native_prefix,
                package_formats=args.package_formats.split(","),
            )
    except ValueError as exc:
        ap.error(str(exc))
    planned = time.monotonic()
    if args.verify:
        bad = verify(entries)
        if bad:
            print("\n".join(bad[:20]), file=sys.stderr)
            print(f"error: {len(bad)} names classify otherwise than intended", file=sys.stderr)
            return 1
    write_cache(out, entries, sparse=args.sparse, seed=args.seed, jobs=args.jobs)
    if args.manifest:
        save_manifest(args.manifest, entries)
    done = time.monotonic()
    if not args.quiet:
        print(summary(entries))
        print(f"planned in {planned - started:.2f} s, written in {done - planned:.2f} s"
              f"{' (sparse)' if args.sparse else ''} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
