//! The export trie: the symbols the executable exports, as dyld and `dlsym` look them up.
//!
//! A node holds an optional terminal (flags and address, both ULEB128) and edges labelled with the rest of a
//! name. Child offsets are ULEB128 too, so a node's size depends on where its children are: offsets are
//! recomputed until they stop changing, as ld64 and lld do (it converges because sizes only grow).

use super::leb::{uleb_len, write_uleb};

/// One exported symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportEntry<'a> {
    pub name: &'a str,
    /// Offset from the image base (`__TEXT`'s vmaddr).
    pub address: u64,
    /// `EXPORT_SYMBOL_FLAGS_*`; 0 for a regular symbol.
    pub flags: u64,
}

/// A trie node; edge labels borrow the names they come from.
#[derive(Debug, Default)]
struct Node<'a> {
    terminal: Option<(u64, u64)>,
    edges: Vec<(&'a [u8], usize)>,
    offset: u64,
}

/// The trie for `entries` (names must be distinct), padded to 8 bytes. Empty for no entries.
pub fn encode_export_trie(entries: &[ExportEntry<'_>]) -> Vec<u8> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<&ExportEntry<'_>> = entries.iter().collect();
    sorted.sort_unstable_by_key(|e| e.name);
    let mut nodes = vec![Node::default()];
    build(&mut nodes, 0, &sorted, 0);
    // Lay the nodes out in creation order (a preorder walk) until every offset is stable.
    loop {
        let mut offset = 0u64;
        let mut changed = false;
        for i in 0..nodes.len() {
            if nodes[i].offset != offset {
                nodes[i].offset = offset;
                changed = true;
            }
            offset += node_size(&nodes, i) as u64;
        }
        if !changed {
            break;
        }
    }
    let mut out = Vec::new();
    for i in 0..nodes.len() {
        debug_assert_eq!(out.len() as u64, nodes[i].offset);
        let node = &nodes[i];
        match node.terminal {
            Some((flags, address)) => {
                write_uleb(&mut out, (uleb_len(flags) + uleb_len(address)) as u64);
                write_uleb(&mut out, flags);
                write_uleb(&mut out, address);
            }
            None => out.push(0),
        }
        out.push(node.edges.len() as u8);
        for (label, child) in &node.edges {
            out.extend_from_slice(label);
            out.push(0);
            write_uleb(&mut out, nodes[*child].offset);
        }
    }
    super::pad8(&mut out);
    out
}

/// Builds the subtree of `node` for `entries`, which all share their first `depth` bytes.
fn build<'a>(nodes: &mut Vec<Node<'a>>, node: usize, entries: &[&ExportEntry<'a>], depth: usize) {
    let mut rest = entries;
    if let Some(first) = rest.first()
        && first.name.len() == depth
    {
        nodes[node].terminal = Some((first.flags, first.address));
        rest = &rest[1..];
    }
    while let Some(first) = rest.first() {
        let byte = first.name.as_bytes()[depth];
        let group_len = rest.iter().take_while(|e| e.name.as_bytes()[depth] == byte).count();
        let group = &rest[..group_len];
        // The edge label runs to the longest prefix the whole group shares.
        let last = group[group_len - 1].name.as_bytes();
        let common = first.name.as_bytes().iter().zip(last).skip(depth).take_while(|(a, b)| a == b).count();
        let label = &first.name.as_bytes()[depth..depth + common];
        let child = nodes.len();
        nodes.push(Node::default());
        nodes[node].edges.push((label, child));
        build(nodes, child, group, depth + common);
        rest = &rest[group_len..];
    }
}

fn node_size(nodes: &[Node<'_>], i: usize) -> usize {
    let node = &nodes[i];
    let terminal = match node.terminal {
        Some((flags, address)) => {
            let info = uleb_len(flags) + uleb_len(address);
            uleb_len(info as u64) + info
        }
        None => 1,
    };
    let edges: usize =
        node.edges.iter().map(|(label, child)| label.len() + 1 + uleb_len(nodes[*child].offset)).sum();
    terminal + 1 + edges
}

/// An independent walker for tests: every (name, flags, address) in the trie.
#[cfg(test)]
pub(crate) fn decode_export_trie(bytes: &[u8]) -> Result<Vec<(String, u64, u64)>, String> {
    use super::leb::read_uleb;
    fn walk(
        bytes: &[u8],
        at: usize,
        prefix: &mut Vec<u8>,
        out: &mut Vec<(String, u64, u64)>,
        depth: u32,
    ) -> Result<(), String> {
        if depth > 512 {
            return Err("trie too deep (a cycle?)".into());
        }
        let mut pos = at;
        let size = read_uleb(bytes, &mut pos).ok_or("terminal size")? as usize;
        if size > 0 {
            let mut p = pos;
            let flags = read_uleb(bytes, &mut p).ok_or("flags")?;
            let address = read_uleb(bytes, &mut p).ok_or("address")?;
            out.push((String::from_utf8(prefix.clone()).map_err(|e| e.to_string())?, flags, address));
        }
        pos += size;
        let count = *bytes.get(pos).ok_or("child count")?;
        pos += 1;
        for _ in 0..count {
            let end = bytes[pos..].iter().position(|&b| b == 0).ok_or("label")?;
            let label = &bytes[pos..pos + end];
            pos += end + 1;
            let child = read_uleb(bytes, &mut pos).ok_or("child offset")? as usize;
            let len = prefix.len();
            prefix.extend_from_slice(label);
            walk(bytes, child, prefix, out, depth + 1)?;
            prefix.truncate(len);
        }
        Ok(())
    }
    let mut out = Vec::new();
    if !bytes.is_empty() {
        walk(bytes, 0, &mut Vec::new(), &mut out, 0)?;
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_sharing_prefixes() {
        let entries = [
            ExportEntry { name: "__mh_execute_header", address: 0, flags: 0 },
            ExportEntry { name: "_main", address: 0x4000, flags: 0 },
            ExportEntry { name: "_mainloop", address: 0x4100, flags: 0 },
            ExportEntry { name: "_map", address: 0x1_0000_0000, flags: 0 },
        ];
        let bytes = encode_export_trie(&entries);
        assert_eq!(bytes.len() % 8, 0);
        let decoded = decode_export_trie(&bytes).unwrap();
        let expected: Vec<_> = entries.iter().map(|e| (e.name.to_string(), e.flags, e.address)).collect();
        assert_eq!(decoded, expected);
    }

    proptest! {
        #[test]
        fn every_name_maps_to_its_address(
            names in prop::collection::btree_map("_[a-c]{0,6}", 0u64..1 << 40, 1..80),
        ) {
            let entries: Vec<_> = names.iter().map(|(n, &a)| ExportEntry { name: n, address: a, flags: 0 }).collect();
            let decoded = decode_export_trie(&encode_export_trie(&entries)).unwrap();
            let expected: Vec<_> = names.iter().map(|(n, &a)| (n.clone(), 0, a)).collect();
            prop_assert_eq!(decoded, expected);
        }
    }
}
