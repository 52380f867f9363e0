//! Routing the real servers' replies to transparent connections.
//!
//! In transparent mode the proxy plane connects to a real server from the
//! client's own address (`IP_TRANSPARENT`). The real server answers that
//! address through its default route, the director (`nat_router`), where
//! the reply would be forwarded towards the client rather than delivered to
//! the proxy's socket. One policy rule per real server — `from RS ipproto
//! tcp sport PORT lookup` [`TABLE`] — sends exactly those replies to a table
//! whose only route is `local default dev lo`, so the kernel delivers them
//! locally, where the transparent socket takes them. Nothing else the real
//! servers send is touched (health-check replies go to the director's own
//! address anyway).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use futures_util::TryStreamExt;
use netlink_packet_route::IpProtocol;
use netlink_packet_route::route::{RouteScope, RouteType};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use crate::addr::NetError;

/// The routing table holding the local default route (`ip route show table
/// 7345`).
pub const TABLE: u32 = 7345;

/// The rules' priority (`ip rule` lists them as `7345:`), ahead of the main
/// table's 32766.
pub const PRIORITY: u32 = 7345;

/// Make the kernel deliver locally the TCP replies from exactly `sources`
/// (real servers' address and port), and nothing else: rules for other
/// sources are removed, and with no sources the table's routes go too.
///
/// # Errors
/// The netlink socket cannot be opened, or the kernel refuses (no
/// `CAP_NET_ADMIN`).
pub async fn route_replies(sources: &[SocketAddr]) -> Result<(), NetError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(conn);
    let result = apply(&handle, sources).await;
    task.abort();
    result
}

async fn apply(handle: &Handle, sources: &[SocketAddr]) -> Result<(), NetError> {
    let lo = loopback(handle).await?;
    for v6 in [false, true] {
        let want: Vec<&SocketAddr> = sources.iter().filter(|s| s.is_ipv6() == v6).collect();
        let version = if v6 { IpVersion::V6 } else { IpVersion::V4 };
        let rules: Vec<RuleMessage> = handle.rule().get(version).execute().try_collect().await?;
        let mut have = Vec::new();
        for r in rules.into_iter().filter(ours) {
            match source_of(&r) {
                Some(s) if want.contains(&&s) => have.push(s),
                _ => handle.rule().del(r).execute().await?,
            }
        }
        if !want.is_empty() {
            local_route(handle, lo, v6).await?;
        } else {
            drop_local_route(handle, lo, v6).await;
        }
        for s in want.into_iter().filter(|s| !have.contains(s)) {
            add_rule(handle, *s).await?;
        }
    }
    Ok(())
}

async fn loopback(handle: &Handle) -> Result<u32, NetError> {
    let mut links = handle.link().get().match_name("lo".to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        _ => Err(NetError::NoSuchDevice("lo".into())),
    }
}

/// A rule of ours: our priority, our table.
fn ours(r: &RuleMessage) -> bool {
    let table = r.attributes.iter().find_map(|a| match a {
        RuleAttribute::Table(t) => Some(*t),
        _ => None,
    });
    let prio = r.attributes.iter().find_map(|a| match a {
        RuleAttribute::Priority(p) => Some(*p),
        _ => None,
    });
    table == Some(TABLE) && prio == Some(PRIORITY)
}

fn source_of(r: &RuleMessage) -> Option<SocketAddr> {
    let addr = r.attributes.iter().find_map(|a| match a {
        RuleAttribute::Source(a) => Some(*a),
        _ => None,
    })?;
    let port = r.attributes.iter().find_map(|a| match a {
        RuleAttribute::SourcePortRange(p) if p.start == p.end => Some(p.start),
        _ => None,
    })?;
    Some(SocketAddr::new(addr, port))
}

async fn add_rule(handle: &Handle, s: SocketAddr) -> Result<(), NetError> {
    let req = handle
        .rule()
        .add()
        .table_id(TABLE)
        .priority(PRIORITY)
        .action(RuleAction::ToTable);
    let mut req = match s.ip() {
        IpAddr::V4(a) => {
            let mut r = req.v4().source_prefix(a, 32);
            push(r.message_mut(), s.port());
            return Ok(r.execute().await?);
        }
        IpAddr::V6(a) => req.v6().source_prefix(a, 128),
    };
    push(req.message_mut(), s.port());
    Ok(req.execute().await?)
}

fn push(m: &mut RuleMessage, port: u16) {
    m.attributes
        .push(RuleAttribute::IpProtocol(IpProtocol::Tcp));
    m.attributes
        .push(RuleAttribute::SourcePortRange(RulePortRange {
            start: port,
            end: port,
        }));
}

fn route(lo: u32, v6: bool) -> netlink_packet_route::route::RouteMessage {
    if v6 {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(TABLE)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(TABLE)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .build()
    }
}

async fn local_route(handle: &Handle, lo: u32, v6: bool) -> Result<(), NetError> {
    Ok(handle
        .route()
        .add(route(lo, v6))
        .replace()
        .execute()
        .await?)
}

async fn drop_local_route(handle: &Handle, lo: u32, v6: bool) {
    // Absent already is fine.
    let _ = handle.route().del(route(lo, v6)).execute().await;
}
