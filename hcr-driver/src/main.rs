//! The `hcr` command.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("hcr: no commands are implemented yet")
}
