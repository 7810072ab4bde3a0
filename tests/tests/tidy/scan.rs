//! A small reader of Rust source for the tidy tests: a lexer (comments
//! dropped, string literals kept with their line), the removal of
//! `#[cfg(test)]` items, the module tree of a crate from its `mod`
//! declarations, each file's references to other files of the same crate
//! (`use` trees and inline paths starting at `crate`, `self`, `super` or a
//! child module), and the strongly connected components of the file graph.
//!
//! Invariant: pure text scanning (no rustc, no cargo), fast, and wrong only in
//! the safe direction for what the tidy tests ask: a name it cannot resolve
//! stays on the module file that was named. A name re-exported (`pub use`) is
//! followed to the file that defines it, so a facade `mod.rs` is no cycle of
//! its own (its re-export is an edge from the facade to the defining file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One token of Rust source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string literal's contents (escapes left as written).
    Str(String),
    /// A number, a char literal or a lifetime: nothing the scans look at.
    Other,
}

/// A token and the line it starts on (1-based).
#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens; comments (doc comments too) are dropped.
pub fn lex(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < s.len() {
        let c = s[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some((len, hashes)) = raw_string_start(&s, i) {
            // r"…", r#"…"#, br#"…"#, cr"…"
            let start_line = line;
            let mut j = i + len;
            let mut text = String::new();
            loop {
                if j >= s.len() {
                    break;
                }
                if s[j] == '"' && (0..hashes).all(|k| s.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if s[j] == '\n' {
                    line += 1;
                }
                text.push(s[j]);
                j += 1;
            }
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
            i = j;
        } else if c == '"' || ((c == 'b' || c == 'c') && s.get(i + 1) == Some(&'"')) {
            let start_line = line;
            let mut j = if c == '"' { i + 1 } else { i + 2 };
            let mut text = String::new();
            while j < s.len() && s[j] != '"' {
                if s[j] == '\\' && j + 1 < s.len() {
                    text.push(s[j]);
                    text.push(s[j + 1]);
                    if s[j + 1] == '\n' {
                        line += 1;
                    }
                    j += 2;
                    continue;
                }
                if s[j] == '\n' {
                    line += 1;
                }
                text.push(s[j]);
                j += 1;
            }
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
            i = j + 1;
        } else if c == '\'' || (c == 'b' && s.get(i + 1) == Some(&'\'')) {
            let q = if c == 'b' { i + 1 } else { i };
            if s.get(q + 1) == Some(&'\\') {
                // An escaped char literal: past the escaped character, up to
                // the closing quote.
                let mut j = q + 3;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if s.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else {
                // A lifetime or a label.
                let mut j = q + 1;
                while j < s.len() && is_ident_char(s[j]) {
                    j += 1;
                }
                i = j;
            }
            out.push(Token {
                tok: Tok::Other,
                line,
            });
        } else if is_ident_start(c) {
            let mut j = i;
            if c == 'r'
                && s.get(i + 1) == Some(&'#')
                && s.get(i + 2).is_some_and(|c| is_ident_start(*c))
            {
                j += 2;
                i += 2;
            }
            while j < s.len() && is_ident_char(s[j]) {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(s[i..j].iter().collect()),
                line,
            });
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < s.len()
                && (is_ident_char(s[j])
                    || (s[j] == '.' && s.get(j + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Other,
                line,
            });
            i = j;
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

/// At `i`, the start of a raw string: (length of the opening, number of `#`).
fn raw_string_start(s: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if s.get(j) == Some(&'b') || s.get(j) == Some(&'c') {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier (`bar"` is no raw string; `foo_r#"` either).
    if i > 0 && is_ident_char(s[i - 1]) {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while s.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (s.get(j) == Some(&'"')).then_some((j + 1 - i, hashes))
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Punct(p)) if *p == c)
}

/// The index after the bracketed group that opens at `i` (`(`, `[` or `{`).
fn skip_group(toks: &[Token], i: usize) -> usize {
    let mut depth = 0i32;
    let mut j = i;
    while j < toks.len() {
        match toks[j].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// Whether the attribute starting at `i` (`#`) is `#[cfg(test)]`.
fn is_cfg_test(toks: &[Token], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    want.iter()
        .enumerate()
        .all(|(k, w)| match toks.get(i + k).map(|t| &t.tok) {
            Some(Tok::Ident(s)) => s == w,
            Some(Tok::Punct(c)) => w.len() == 1 && w.starts_with(*c),
            _ => false,
        })
}

/// The index after the item starting at `i` (attributes already skipped):
/// to its `;` or the `}` that closes its body.
fn skip_item(toks: &[Token], i: usize) -> usize {
    let kw = toks[i..]
        .iter()
        .find_map(|t| match &t.tok {
            Tok::Ident(s) if s != "pub" && s != "crate" && s != "super" && s != "in" => {
                Some(s.as_str())
            }
            _ => None,
        })
        .unwrap_or("");
    let semicolon_only = matches!(kw, "use" | "const" | "static" | "type" | "let");
    // Not an item: a field, a variant or a match arm, which a comma ends.
    let comma_ends = !matches!(
        kw,
        "fn" | "impl"
            | "struct"
            | "enum"
            | "trait"
            | "type"
            | "mod"
            | "use"
            | "const"
            | "static"
            | "let"
            | "macro_rules"
            | "unsafe"
            | "async"
            | "extern"
            | "union"
    );
    let mut depth = 0i32;
    let mut j = i;
    while j < toks.len() {
        match toks[j].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => return j,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 && !semicolon_only {
                    return j + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return j + 1,
            Tok::Punct(',') if depth == 0 && comma_ends => return j + 1,
            _ => {}
        }
        j += 1;
    }
    j
}

/// A file's tokens without its `#[cfg(test)]` items, and the names of the
/// modules declared `#[cfg(test)] mod name;` (their files are test code).
pub fn strip_cfg_test(toks: &[Token]) -> (Vec<Token>, BTreeSet<String>) {
    let mut out = Vec::with_capacity(toks.len());
    let mut test_mods = BTreeSet::new();
    let mut i = 0;
    while i < toks.len() {
        if is_cfg_test(toks, i) {
            let mut j = i + 7;
            // Further attributes of the same item.
            while is_punct(toks.get(j), '#') && is_punct(toks.get(j + 1), '[') {
                j = skip_group(toks, j + 1);
            }
            let end = skip_item(toks, j);
            let item = &toks[j..end];
            if let Some(k) = item.iter().position(|t| t.tok == Tok::Ident("mod".into())) {
                if let Some(name) = ident(item.get(k + 1)) {
                    if is_punct(item.get(k + 2), ';') {
                        test_mods.insert(name.to_owned());
                    }
                }
            }
            i = end;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    (out, test_mods)
}

/// A leaf of a `use` tree: the path as written (`crate`, `self`, `super` kept),
/// the name it brings in (`None` for a glob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseLeaf {
    pub path: Vec<String>,
    pub name: Option<String>,
}

/// Parses the use tree at `i` under `prefix`; returns the index after it.
fn use_tree(toks: &[Token], mut i: usize, prefix: Vec<String>, out: &mut Vec<UseLeaf>) -> usize {
    let mut path = prefix;
    if toks.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
        i += 1;
    }
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    if is_punct(toks.get(i), '}') {
                        return i + 1;
                    }
                    if toks.get(i).is_none() {
                        return i;
                    }
                    i = use_tree(toks, i, path.clone(), out);
                    if is_punct(toks.get(i), ',') {
                        i += 1;
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                out.push(UseLeaf { path, name: None });
                return i + 1;
            }
            Some(Tok::Ident(seg)) => {
                path.push(seg.clone());
                i += 1;
                if toks.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut name = path.last().cloned();
                if ident(toks.get(i)) == Some("as") {
                    name = ident(toks.get(i + 1)).map(str::to_owned);
                    i += 2;
                }
                if name.as_deref() == Some("self") {
                    path.pop();
                    name = path.last().cloned();
                }
                out.push(UseLeaf { path, name });
                return i;
            }
            _ => return i,
        }
    }
}

/// What one file says about the crate's other files.
#[derive(Debug, Default, Clone)]
pub struct FileFacts {
    /// Modules declared `mod name;` outside test code (their files follow).
    pub child_mods: Vec<String>,
    /// Modules declared `#[cfg(test)] mod name;`.
    pub test_mods: BTreeSet<String>,
    /// Names of items defined at the top level of the file.
    pub defines: BTreeSet<String>,
    /// `pub use` leaves: name → absolute path (crate-relative segments).
    pub reexports: BTreeMap<String, Vec<String>>,
    /// `pub use …::*`: absolute module paths.
    pub glob_reexports: Vec<Vec<String>>,
    /// Every path into the crate: absolute segments and line.
    pub refs: Vec<(Vec<String>, usize)>,
    /// String literals outside test code: contents and line.
    pub strings: Vec<(String, usize)>,
}

/// Turns a path as written in module `cur` into crate-relative segments; `None`
/// when it does not start inside the crate. `children` are the modules the
/// file declares (a path may start with one of them).
fn absolute(path: &[String], cur: &[String], children: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String>;
    let mut rest = &path[1..];
    match first.as_str() {
        "crate" => base = Vec::new(),
        "self" => base = cur.to_vec(),
        "super" => {
            base = cur.to_vec();
            base.pop()?;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        name if children.iter().any(|c| c == name) => {
            base = cur.to_vec();
            base.push(name.to_owned());
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Reads one file of module `module` (tokens already lexed).
pub fn file_facts(toks: &[Token], module: &[String]) -> FileFacts {
    let (toks, test_mods) = strip_cfg_test(toks);
    let mut f = FileFacts {
        test_mods,
        ..FileFacts::default()
    };
    // Declared children first: a path may start with one.
    for w in toks.windows(3) {
        if w[0].tok == Tok::Ident("mod".into()) && is_punct(Some(&w[2]), ';') {
            if let Some(name) = ident(Some(&w[1])) {
                f.child_mods.push(name.to_owned());
            }
        }
    }
    // Inline modules: (name, brace depth at which their body opened).
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let mut cur = module.to_vec();
        cur.extend(inline.iter().map(|(n, _)| n.clone()));
        let children: &[String] = if inline.is_empty() {
            &f.child_mods
        } else {
            &[]
        };
        match &t.tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
            }
            Tok::Str(s) => {
                f.strings.push((s.clone(), t.line));
                i += 1;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(name), true) = (ident(toks.get(i + 1)), is_punct(toks.get(i + 2), '{'))
                {
                    if inline.is_empty() {
                        f.defines.insert(name.to_owned());
                    }
                    inline.push((name.to_owned(), depth + 1));
                    depth += 1;
                    i += 3;
                } else {
                    if let Some(name) = ident(toks.get(i + 1)) {
                        f.defines.insert(name.to_owned());
                    }
                    i += 2;
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                let public = is_pub_before(&toks, i);
                let mut leaves = Vec::new();
                let end = use_tree(&toks, i + 1, Vec::new(), &mut leaves);
                for leaf in leaves {
                    let Some(abs) = absolute(&leaf.path, &cur, children) else {
                        continue;
                    };
                    if public && inline.is_empty() {
                        match &leaf.name {
                            Some(n) => {
                                f.reexports.insert(n.clone(), abs.clone());
                            }
                            None => f.glob_reexports.push(abs.clone()),
                        }
                    }
                    f.refs.push((abs, t.line));
                }
                i = end;
            }
            Tok::Ident(kw)
                if matches!(
                    kw.as_str(),
                    "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "union"
                ) =>
            {
                if let (Some(name), true) = (ident(toks.get(i + 1)), inline.is_empty()) {
                    f.defines.insert(name.to_owned());
                }
                i += 1;
            }
            Tok::Ident(kw) if kw == "macro_rules" => {
                if let Some(name) = ident(toks.get(i + 2)) {
                    f.defines.insert(name.to_owned());
                }
                i += 1;
            }
            Tok::Ident(first)
                if toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::PathSep)
                    && !matches!(
                        toks.get(i.wrapping_sub(1)).map(|t| &t.tok),
                        Some(Tok::PathSep | Tok::Punct('.'))
                    ) =>
            {
                // An inline path: `first::a::b`, up to a non-identifier.
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    match ident(toks.get(j + 1)) {
                        Some(seg) => {
                            path.push(seg.to_owned());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if let Some(abs) = absolute(&path, &cur, children) {
                    f.refs.push((abs, t.line));
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    f
}

/// Whether the `use` at `i` is public (`pub`, `pub(crate)`, `pub(super)`…).
fn is_pub_before(toks: &[Token], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).and_then(|k| toks.get(k)) else {
        return false;
    };
    match &prev.tok {
        Tok::Ident(s) => s == "pub",
        Tok::Punct(')') => {
            // `pub ( … ) use`
            let mut k = i - 1;
            while k > 0 && !is_punct(toks.get(k), '(') {
                k -= 1;
            }
            k > 0 && ident(toks.get(k - 1)) == Some("pub")
        }
        _ => false,
    }
}

/// A crate's source files, their module paths and what they say.
#[derive(Debug)]
pub struct Crate {
    /// Files in module order: path relative to `src`, module path, facts.
    pub files: Vec<(PathBuf, Vec<String>, FileFacts)>,
}

impl Crate {
    /// Reads the library crate rooted at `src/lib.rs`, following `mod`
    /// declarations outside test code (`#[cfg(test)] mod x;` files are left out).
    pub fn read(src: &Path) -> Crate {
        Crate::read_root(src, "lib.rs")
    }

    /// Reads the crate rooted at `src/<root>` (`lib.rs`, or `main.rs` for a
    /// binary's own modules), as [`Crate::read`] does.
    pub fn read_root(src: &Path, root: &str) -> Crate {
        let mut files = Vec::new();
        let mut todo = vec![(PathBuf::from(root), Vec::<String>::new())];
        while let Some((rel, module)) = todo.pop() {
            let text = std::fs::read_to_string(src.join(&rel))
                .unwrap_or_else(|e| panic!("{}: {e}", src.join(&rel).display()));
            let facts = file_facts(&lex(&text), &module);
            // Children live in the directory of a mod.rs/lib.rs, else in the
            // directory named after the file.
            let dir = if rel
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs")
            {
                rel.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                rel.with_extension("")
            };
            for child in &facts.child_mods {
                let flat = dir.join(format!("{child}.rs"));
                let nested = dir.join(child).join("mod.rs");
                let file = if src.join(&flat).exists() {
                    flat
                } else {
                    nested
                };
                let mut m = module.clone();
                m.push(child.clone());
                todo.push((file, m));
            }
            files.push((rel, module, facts));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Crate { files }
    }

    fn index_of_module(&self, module: &[String]) -> Option<usize> {
        self.files.iter().position(|(_, m, _)| m == module)
    }

    /// The file a crate-relative path lands in: the deepest module file it
    /// names, then the file defining the item it names (through `pub use`).
    pub fn resolve(&self, path: &[String]) -> Option<usize> {
        self.resolve_depth(path, 0)
    }

    fn resolve_depth(&self, path: &[String], depth: usize) -> Option<usize> {
        let mut k = path.len();
        let file = loop {
            if let Some(f) = self.index_of_module(&path[..k]) {
                break f;
            }
            k = k.checked_sub(1)?;
        };
        let Some(name) = path.get(k) else {
            return Some(file);
        };
        if depth > 8 {
            return Some(file);
        }
        let facts = &self.files[file].2;
        if facts.defines.contains(name) {
            return Some(file);
        }
        if let Some(target) = facts.reexports.get(name) {
            let mut t = target.clone();
            t.extend(path[k + 1..].iter().cloned());
            return self.resolve_depth(&t, depth + 1).or(Some(file));
        }
        for glob in &facts.glob_reexports {
            if let Some(g) = self.index_of_module(glob) {
                let gf = &self.files[g].2;
                if gf.defines.contains(name) || gf.reexports.contains_key(name) {
                    let mut t = glob.clone();
                    t.extend(path[k..].iter().cloned());
                    return self.resolve_depth(&t, depth + 1).or(Some(file));
                }
            }
        }
        Some(file)
    }

    /// The file graph: for each file, the files it refers to (itself left out).
    pub fn graph(&self) -> Vec<BTreeSet<usize>> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, (_, _, facts))| {
                facts
                    .refs
                    .iter()
                    .filter_map(|(p, _)| self.resolve(p))
                    .filter(|t| *t != i)
                    .collect()
            })
            .collect()
    }

    /// The path of file `i` as written in messages (`hub/src/store/db.rs`).
    pub fn name(&self, i: usize, prefix: &str) -> String {
        format!("{prefix}/{}", self.files[i].0.display())
    }
}

/// The strongly connected components of more than one node (Tarjan), each
/// sorted, in sorted order.
pub fn cycles(graph: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct T<'g> {
        g: &'g [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T<'_>, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in t.g[v].iter() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort_unstable();
                t.out.push(comp);
            }
        }
    }
    let n = graph.len();
    let mut t = T {
        g: graph,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

/// The SQL statement a string literal holds, if any: `SELECT … FROM`,
/// `INSERT INTO`, `UPDATE … SET`, `DELETE FROM`, `CREATE TABLE`, `PRAGMA`
/// (upper case, as the code writes SQL).
pub fn sql_keyword(text: &str) -> Option<&'static str> {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let pair = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let later = |a: &str, b: &str| {
        words
            .iter()
            .position(|w| *w == a)
            .is_some_and(|p| words[p + 1..].contains(&b))
    };
    if pair("INSERT", "INTO") {
        Some("INSERT INTO")
    } else if pair("DELETE", "FROM") {
        Some("DELETE FROM")
    } else if pair("CREATE", "TABLE") {
        Some("CREATE TABLE")
    } else if words.contains(&"PRAGMA") {
        Some("PRAGMA")
    } else if later("SELECT", "FROM") {
        Some("SELECT … FROM")
    } else if words.windows(3).any(|w| w[0] == "UPDATE" && w[2] == "SET") {
        Some("UPDATE … SET")
    } else {
        None
    }
}
