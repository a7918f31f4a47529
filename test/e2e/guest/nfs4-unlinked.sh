#!/bin/sh
# NFSv4.1 files deleted while open, across two guests (ROLE a or b) on one
# volume: A writes a file, B opens it, A removes it; B keeps reading the
# same bytes (from the server: its page cache is dropped) and writing
# through its open until it closes it; only then does the volume's usage,
# as df on A shows it, go back down.
# env: ROLE NFS_ADDR EXPORT
. /e2e/lib.sh
M=/mnt/v
NFS_VERS=4.1 nfs_mount "$NFS_ADDR" "$EXPORT" $M || fail "mount $EXPORT"
F=$M/doomed
used() { df -kP $M | awk 'NR == 2 { print $3 }'; }
case $ROLE in
a)
	dd if=/dev/urandom of=$F bs=1M count=16 2>/dev/null || fail "write $F"
	sync
	ctl signal a-written "$(sha $F)" || fail signal
	ctl wait b-open 240 >/dev/null || fail "B never opened the file"
	before=$(used)
	rm $F || fail "rm $F"
	[ ! -e $F ] || fail "$F still there after rm"
	after=$(used)
	result used-kib-before-rm "$before"
	result used-kib-after-rm "$after"
	[ "$after" -ge $((before - 1024)) ] || fail "usage fell from $before to $after KiB while B has the file open"
	ctl signal a-removed || fail signal
	ctl wait b-closed 240 >/dev/null || fail "B never closed the file"
	# B's CLOSE is sent as its last close returns; look a few times.
	for i in 1 2 3 4 5 6 7 8 9 10; do
		freed=$(used)
		[ "$freed" -le $((after - 15 * 1024)) ] && break
		sleep 1
	done
	result used-kib-after-close "$freed"
	[ "$freed" -le $((after - 15 * 1024)) ] || fail "usage $freed KiB after B closed, $after before: the space did not come back"
	ctl signal a-done || fail signal
	;;
b)
	want=$(ctl wait a-written 240) || fail "A never wrote the file"
	# Three opens before the removal, as a program would have: one to
	# read, one to write, one to read back (busybox sh has no seek).
	exec 3<$F 4<>$F 5<$F || fail "open $F"
	ctl signal b-open || fail signal
	ctl wait a-removed 240 >/dev/null || fail "A never removed the file"
	drop_caches
	# The same bytes through the open file (a read, not the cache).
	got=$(sha256sum <&3 | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "B read sha $got of the removed file, want $want"
	result removed-file-sha-ok "$got"
	# Writing through an open works too, and reads back after a cache drop.
	printf 'written after removal' >&4 || fail "write to the removed file"
	drop_caches
	back=$(dd bs=21 count=1 <&5 2>/dev/null)
	[ "$back" = "written after removal" ] || fail "read back after the write: '$back'"
	# B removes a file it has open itself. The server does not say
	# PRESERVE_UNLINKED (its holds do not survive a restart), so the
	# client renames it to .nfsXXXX, which does; B reads on.
	dd if=/dev/urandom of=$M/own bs=64k count=4 2>/dev/null || fail "write own"
	own=$(sha $M/own)
	exec 6<$M/own || fail "open own"
	rm $M/own || fail "rm own"
	silly=$(ls -a $M | grep -c '^\.nfs')
	result silly-renamed "$silly"
	[ "$silly" -ge 1 ] || fail "the client did not silly-rename the file it removed while open"
	drop_caches
	got=$(sha256sum <&6 | cut -d' ' -f1)
	[ "$got" = "$own" ] || fail "B read sha $got of the file it removed itself, want $own"
	exec 3<&- 4>&- 5<&- 6<&-
	ctl signal b-closed || fail signal
	ctl wait a-done 240 >/dev/null || fail "A did not finish"
	;;
esac
umount $M || fail umount
