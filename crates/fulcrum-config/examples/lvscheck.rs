//! Print the diagnostics for a file (development aid).
fn main() {
    let path = std::env::args().nth(1).expect("usage: lvscheck FILE");
    let src = std::fs::read_to_string(&path).expect("readable file");
    let p = fulcrum_config::parse(&src);
    print!("{}", p.render(&path, &src));
    if std::env::args().nth(2).as_deref() == Some("--write") {
        print!("{}", fulcrum_config::write(&p.config));
    }
}
