#!/bin/sh
# check-apple-asm.sh - assembles the context switches for Mach-O (macOS on
# arm64 and on x86-64) with clang, though no Apple machine runs here, and
# checks what can be checked without one:
#  - both files assemble for the Apple targets;
#  - cio__ctx_switch and cio__ctx_entry come out as _cio__ctx_switch and
#    _cio__ctx_entry, private extern (the Mach-O .hidden), in __TEXT,__text;
#  - the machine code is the same, byte for byte, as the ELF build of the
#    same file: only the symbol names and object format differ;
#  - the arm64 code never uses x18, the register Apple's ABI reserves.
# Exits non-zero on the first failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

pick() { # first of the named tools that exists
	for t in "$@"; do
		if command -v "$t" >/dev/null 2>&1; then
			echo "$t"
			return 0
		fi
	done
	echo "check-apple-asm: none of $* found (scripts/deps.sh installs clang and llvm)" >&2
	return 1
}
cc=$(pick clang clang-14)
objdump=$(pick llvm-objdump llvm-objdump-14)
nm=$(pick llvm-nm llvm-nm-14)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "check-apple-asm: $*" >&2
	exit 1
}

# The disassembly with the object format's marks taken out: Mach-O's
# leading underscore and the "##" comments llvm-objdump writes for it.
disasm() {
	"$objdump" -d --no-leading-addr "$1" |
		grep -E '^ *([0-9a-f]{2} )+' |
		sed -e 's/<_cio__/<cio__/g' -e 's/##/#/g'
}

for arch in arm64:aarch64:switch_aarch64.S x86_64:x86_64:switch_x86_64.S; do
	apple=${arch%%:*}
	rest=${arch#*:}
	elf=${rest%%:*}
	src="$top/src/platform/${rest#*:}"
	macho_o="$tmp/$apple-apple.o"
	elf_o="$tmp/$elf-linux.o"

	"$cc" -target "$apple-apple-macos11" -c "$src" -o "$macho_o" ||
		fail "$src does not assemble for $apple-apple-macos11"
	"$cc" -target "$elf-linux-gnu" -c "$src" -o "$elf_o" ||
		fail "$src does not assemble for $elf-linux-gnu"

	"$objdump" -d "$macho_o" | grep -q 'file format mach-o' ||
		fail "$macho_o is not a Mach-O object"
	for sym in cio__ctx_switch cio__ctx_entry; do
		"$nm" -m "$macho_o" | grep -q "(__TEXT,__text) private external _$sym\$" ||
			fail "$apple: _$sym is not a private extern in __TEXT,__text:
$("$nm" -m "$macho_o")"
		if "$nm" "$macho_o" | grep -q " $sym\$"; then
			fail "$apple: $sym lacks the Mach-O underscore"
		fi
	done
	if "$nm" -u "$macho_o" | grep -q .; then
		fail "$apple: undefined symbols: $("$nm" -u "$macho_o")"
	fi

	disasm "$macho_o" >"$tmp/$apple.dis"
	disasm "$elf_o" >"$tmp/$elf.dis"
	[ -s "$tmp/$apple.dis" ] || fail "$apple: empty disassembly"
	if ! diff -u "$tmp/$elf.dis" "$tmp/$apple.dis" >"$tmp/diff"; then
		cat "$tmp/diff" >&2
		fail "$apple: Mach-O code differs from the ELF code"
	fi
	if [ "$apple" = arm64 ] && grep -Eqw '[xw]18' "$tmp/$apple.dis"; then
		fail "arm64: the switch uses x18, which Apple's ABI reserves"
	fi
	echo "check-apple-asm: $apple Mach-O: _cio__ctx_switch, _cio__ctx_entry private extern; $(wc -l <"$tmp/$apple.dis") instructions as on ELF"
done
