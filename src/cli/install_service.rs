//! `ares install-service`: a systemd unit for this binary and config, sandboxed (a dynamic
//! user, a private state directory, a read-only system, no home directories, no new
//! privileges, IP and Unix sockets only), with secrets in an environment file only root can
//! read. `--print` shows the unit and writes nothing.
//!
//! The server's own deploy targets must still work inside that sandbox: their `workdir`s are
//! the only other paths the unit makes writable, and a polkit rule lets the service's user
//! (and no one else) restart its own unit, since `NoNewPrivileges=yes` rules out `sudo`.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{Failure, load_config};
use crate::GlobalArgs;

/// Where systemd reads units the administrator installs.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Secrets for the service (`ADMIN_API_KEY`, `JWT_SECRET`, provider keys): root-only.
pub const ENV_FILE: &str = "/etc/ares/ares.env";
/// The data dir systemd makes for `StateDirectory=ares`.
const STATE_DIR: &str = "/var/lib/ares";
/// Where polkit reads local rules.
pub const POLKIT_RULES_DIR: &str = "/etc/polkit-1/rules.d";

pub struct Options {
    pub print: bool,
    pub name: String,
    pub binary: Option<PathBuf>,
    pub unit_dir: PathBuf,
    pub env_file: PathBuf,
    pub polkit_dir: PathBuf,
}

pub fn run(global: &GlobalArgs, options: &Options) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    let binary = match &options.binary {
        Some(path) => path.clone(),
        None => {
            std::env::current_exe().map_err(|e| Failure::runtime(format!("cannot tell where this binary is: {e}")))?
        }
    };
    let binary = absolute(&binary)?;
    let config = match &loaded.path {
        Some(path) => Some(absolute(path)?),
        None => None,
    };
    let grace = loaded.config.server.shutdown_grace_secs;
    let writable = deploy_workdirs(&loaded.config.deploy.targets, &options.name);
    let unit = unit(&binary, config.as_deref(), &options.env_file, grace, &writable);
    if options.print {
        print!("{unit}");
        return Ok(());
    }
    let hidden: Vec<&Path> =
        [Some(binary.as_path()), config.as_deref()].into_iter().flatten().filter(|p| under_home(p)).collect();
    if !hidden.is_empty() {
        let names: Vec<String> = hidden.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::usage(format!(
            "the service cannot read {} (ProtectHome=yes hides /home, /root and /run/user; PrivateTmp=yes hides /tmp): \
             copy them elsewhere first, \
             e.g. `install -m 755 target/release/ares /usr/local/bin/` and `install -D -m 644 ares.toml /etc/ares/ares.toml`, \
             then run `/usr/local/bin/ares install-service --config /etc/ares/ares.toml`",
            names.join(" and ")
        )));
    }
    if options.unit_dir == Path::new(UNIT_DIR) && !rustix::process::geteuid().is_root() {
        return Err(Failure::usage("writing a system unit needs root: run it with sudo, or use --print"));
    }
    let unit_path = options.unit_dir.join(format!("{}.service", options.name));
    std::fs::create_dir_all(&options.unit_dir)
        .and_then(|()| std::fs::write(&unit_path, &unit))
        .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", unit_path.display())))?;
    println!("wrote {}", unit_path.display());
    if write_env_file(&options.env_file)? {
        println!(
            "wrote {} (mode 0600): put ADMIN_API_KEY, JWT_SECRET and provider keys there",
            options.env_file.display()
        );
    } else {
        println!("kept {} as it is", options.env_file.display());
    }
    write_restart_rule(&options.polkit_dir, &options.name)?;
    println!(
        "\nthen:\n  systemctl daemon-reload\n  systemctl enable --now {name}\n  journalctl -u {name} -f\n\n\
         data lives in {STATE_DIR} (back it up with `ares backup --data-dir {STATE_DIR}`)\n\
         GET /api/admin/services lists the server as `ares` with \"unit\": \"{name}.service\"; a deploy target \
         restarts it with `systemctl restart --no-block {name}` (no sudo)",
        name = options.name
    );
    Ok(())
}

/// The deploy targets' absolute working directories, with a note on stderr (stdout may be the
/// unit itself) for what will not work inside the sandbox.
fn deploy_workdirs<'c>(targets: &'c [ares::config::DeployTarget], name: &str) -> Vec<&'c Path> {
    let mut writable = Vec::new();
    for target in targets {
        match target.workdir.as_deref() {
            Some(dir) if dir.is_absolute() => writable.push(dir),
            Some(dir) => eprintln!(
                "note: deploy target '{}' has a relative workdir ({}); give an absolute one to make it writable for the service",
                target.name,
                dir.display()
            ),
            None => {}
        }
        if target.commands.iter().any(|c| c.split_whitespace().any(|word| word == "sudo")) {
            eprintln!(
                "note: deploy target '{}' uses sudo, which the service's NoNewPrivileges=yes refuses; \
                 restart with `systemctl restart --no-block {name}` instead",
                target.name
            );
        }
    }
    writable
}

/// The polkit rule that lets the service's user start, stop and restart its own unit, so a
/// deploy target can restart the server it runs in. Written only where polkit is installed;
/// without it, say what a restarting deploy target needs.
fn write_restart_rule(dir: &Path, name: &str) -> Result<(), Failure> {
    let installed = dir.is_dir() || dir.parent().is_some_and(Path::is_dir);
    if !installed {
        println!(
            "polkit is not installed ({} is missing): a deploy target cannot restart {name}.service              until it is (apt install polkitd), then run this again",
            dir.display()
        );
        return Ok(());
    }
    let path = dir.join(format!("50-{name}.rules"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, restart_rule(name)))
        .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {} (the {name} service may restart its own unit, nothing else)", path.display());
    Ok(())
}

/// A `DynamicUser=yes` service runs as a user named after its unit while it runs.
pub fn restart_rule(name: &str) -> String {
    format!(
        "// Written by `ares install-service`: the {name} service may start, stop and restart\n\
         // {name}.service (a deploy target running `systemctl restart --no-block {name}`), nothing else.\n\
         polkit.addRule(function(action, subject) {{\n\
         \x20   if (action.id == \"org.freedesktop.systemd1.manage-units\" &&\n\
         \x20       action.lookup(\"unit\") == \"{name}.service\" &&\n\
         \x20       subject.user == \"{name}\") {{\n\
         \x20       var verb = action.lookup(\"verb\");\n\
         \x20       if (verb == \"start\" || verb == \"stop\" || verb == \"restart\" || verb == \"try-restart\") {{\n\
         \x20           return polkit.Result.YES;\n\
         \x20       }}\n\
         \x20   }}\n\
         }});\n"
    )
}

/// The unit for `binary` serving `config` (or the built-in defaults); `writable` are the deploy
/// targets' working directories, the only paths outside the data dir it may write.
pub fn unit(binary: &Path, config: Option<&Path>, env_file: &Path, grace_secs: u64, writable: &[&Path]) -> String {
    let config_arg = config.map(|c| format!(" --config {}", c.display())).unwrap_or_default();
    // `-`: a workdir that does not exist (yet) must not stop the service from starting.
    let writable = if writable.is_empty() {
        String::new()
    } else {
        let paths: Vec<String> = writable.iter().map(|p| format!("-{}", p.display())).collect();
        format!("# The deploy targets' working directories.\nReadWritePaths={}\n", paths.join(" "))
    };
    format!(
        "# Written by `ares install-service`; run it again to regenerate.\n\
         [Unit]\n\
         Description=ARES, embedded: the ARES agent-platform API\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={binary} serve{config_arg} --data-dir {STATE_DIR}\n\
         # Secrets (ADMIN_API_KEY, JWT_SECRET, provider keys), readable by root only.\n\
         EnvironmentFile=-{env}\n\
         DynamicUser=yes\n\
         StateDirectory=ares\n\
         StateDirectoryMode=0700\n\
         UMask=0077\n\
         ProtectSystem=strict\n\
         {writable}\
         ProtectHome=yes\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         NoNewPrivileges=yes\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n\
         LimitNOFILE=65536\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         # SIGTERM drains requests in flight for [server].shutdown_grace_secs.\n\
         TimeoutStopSec={stop}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        binary = binary.display(),
        env = env_file.display(),
        stop = grace_secs + 15,
    )
}

/// Create the environment file with commented placeholders, 0600, unless it exists.
fn write_env_file(path: &Path) -> Result<bool, Failure> {
    if path.exists() {
        return Ok(false);
    }
    let io = |e: std::io::Error| Failure::runtime(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(
        b"# Secrets for the ares service (systemd EnvironmentFile; root-only).\n\
          # Without these, ares generates secrets into its data dir at first start.\n\
          # ADMIN_API_KEY=\n\
          # JWT_SECRET=\n\
          # Provider keys, named by each provider's api_key_env:\n\
          # OPENAI_API_KEY=\n",
    )
    .map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(true)
}

fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::fs::canonicalize(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Paths the sandbox hides from the service: `ProtectHome=yes` and `PrivateTmp=yes`.
fn under_home(path: &Path) -> bool {
    ["/home", "/root", "/run/user", "/tmp", "/var/tmp"].iter().any(|hidden| path.starts_with(hidden))
}
