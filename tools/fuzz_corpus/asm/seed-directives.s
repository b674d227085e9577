.map counts, type=hash, key_size=4, value_size=8, max_entries=16
.section xdp
.globl prog
prog:
  *(u32 *)(r10 - 4) = 0
  r1 = map[counts] ll
  r2 = r10
  r2 += -4
  call bpf_map_lookup_elem
  if r0 == 0 goto out
  r1 = 1
  lock *(u64 *)(r0 + 0) += r1
  call helper
out:
  r0 = 2
  exit
.text
helper:
  r0 = 0
  exit
.license "GPL"
