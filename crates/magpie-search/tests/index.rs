//! The index on its own: tokens for every script, scope and floors,
//! expiry, idempotent re-indexing, paging, durability across a reopen.

use magpie_core::{ClientMsgId, ConvId, GroupId, Message, Persistence, ServerMsgId, UserId};
use magpie_search::{Batch, Ranking, SearchIndex, SearchQuery, Segmenter};

fn msg(id: i64, conv: &ConvId, seq: i64, from: i64, body: &str) -> Message {
    Message {
        meta: None,
        trace: None,
        server_id: ServerMsgId(id),
        conv: conv.clone(),
        seq,
        from: UserId(from),
        to: UserId(0),
        cmid: ClientMsgId::new_v7(),
        body: body.into(),
        persistence: Persistence::Forever,
        sent_at: 1_000 + id,
        search: true,
    }
}

/// A query by user 1 for the direct conversations in `scope` (1 is a
/// party of `a` only), or for the groups of `scope`.
fn query(text: &str, scope: &[(ConvId, i64)]) -> SearchQuery {
    let groups: Vec<(ConvId, i64)> = scope
        .iter()
        .filter(|(c, _)| c.group_id().is_some())
        .cloned()
        .collect();
    let direct = scope.iter().any(|(c, _)| c.group_id().is_none());
    SearchQuery {
        text: text.into(),
        party: direct.then_some(UserId(1)),
        groups,
        conv: None,
        from: None,
        since: None,
        until: None,
        ranking: Ranking::Newest,
        cursor: None,
        limit: 20,
        now: 2_000_000,
    }
}

fn ids(index: &SearchIndex, q: &SearchQuery) -> Vec<i64> {
    let found = index.search(q).expect("search");
    found.hits.iter().map(|h| h.server_id.0).collect()
}

/// Indexes `msgs` durably (a batch of upserts only).
async fn upsert(index: &SearchIndex, msgs: Vec<Message>) {
    let batch = Batch {
        delete: Vec::new(),
        upsert: msgs,
        expire_before: None,
    };
    index.apply(batch).await.expect("apply");
}

async fn corpus() -> (SearchIndex, ConvId, ConvId) {
    let index = SearchIndex::in_memory(Segmenter::Bigram).expect("index");
    let a = ConvId::direct(UserId(1), UserId(2));
    let b = ConvId::group(GroupId(7));
    let msgs = vec![
        msg(1, &a, 1, 1, "这个软件安装简单"),
        msg(2, &a, 2, 2, "你好，鲍勃"),
        msg(3, &a, 3, 1, "東京タワーに行きました"),
        msg(4, &a, 4, 2, "안녕하세요 반갑습니다"),
        msg(5, &a, 5, 1, "The installers were running"),
        msg(6, &a, 6, 2, "iPhone价格太贵了"),
        msg(7, &b, 1, 3, "安装简单 for someone else"),
        msg(8, &a, 7, 1, "简 alone"),
    ];
    upsert(&index, msgs).await;
    (index, a, b)
}

#[tokio::test]
async fn every_script_is_found_inside_words() {
    let (index, a, _) = corpus().await;
    let scope = [(a.clone(), 0)];
    assert_eq!(ids(&index, &query("简单", &scope)), [1]);
    assert_eq!(ids(&index, &query("鲍勃", &scope)), [2]);
    assert_eq!(ids(&index, &query("タワー", &scope)), [3]);
    assert_eq!(ids(&index, &query("東京", &scope)), [3]);
    assert_eq!(ids(&index, &query("반갑", &scope)), [4]);
    assert_eq!(
        ids(&index, &query("INSTALLER", &scope)),
        [5],
        "lowercased and stemmed"
    );
    assert_eq!(
        ids(&index, &query("run", &scope)),
        [5],
        "running stems to run"
    );
    assert_eq!(ids(&index, &query("iphone 价格", &scope)), [6]);
    assert_eq!(
        ids(&index, &query("价格iPhone", &scope)),
        [6],
        "mixed text in the query"
    );
    assert_eq!(
        ids(&index, &query("简", &scope)),
        [8, 1],
        "one character: newest first"
    );
    assert!(
        ids(&index, &query("单简", &scope)).is_empty(),
        "a run matches as written"
    );
    assert!(ids(&index, &query("安装软件", &scope)).is_empty());
    let err = index.search(&query("，！", &scope)).expect_err("no words");
    assert!(err.to_string().contains("no words"));
}

#[tokio::test]
async fn scope_and_floors_hold_inside_the_query() {
    let (index, a, g) = corpus().await;
    assert_eq!(ids(&index, &query("安装简单", &[(a.clone(), 0)])), [1]);
    assert_eq!(ids(&index, &query("安装简单", &[(g.clone(), 0)])), [7]);
    assert_eq!(
        ids(
            &index,
            &query("安装简单", &[(a.clone(), 0), (g.clone(), 0)])
        ),
        [7, 1]
    );
    assert!(
        ids(&index, &query("安装简单", &[(g.clone(), 1)])).is_empty(),
        "seq 1 is at the floor"
    );
    assert!(ids(&index, &query("安装简单", &[])).is_empty());
    let mut stranger = query("安装简单", &[(a.clone(), 0)]);
    stranger.party = Some(UserId(3));
    assert!(ids(&index, &stranger).is_empty(), "not a party of d:1:2");
    let mut only = query("安装简单", &[(a.clone(), 0), (g.clone(), 0)]);
    only.conv = Some(g.clone());
    assert_eq!(ids(&index, &only), [7]);
    let mut by = query("简", &[(a.clone(), 0)]);
    by.from = Some(UserId(2));
    assert!(ids(&index, &by).is_empty());
    by.from = Some(UserId(1));
    assert_eq!(ids(&index, &by), [8, 1]);
    let mut window = query("简", &[(a, 0)]);
    window.until = Some(1_001);
    assert_eq!(ids(&index, &window), [1]);
}

#[tokio::test]
async fn reindexing_keeps_one_document_and_expiry_removes() {
    let (index, a, _) = corpus().await;
    let before = index.num_docs();
    let again = vec![msg(1, &a, 1, 1, "这个软件安装简单")];
    upsert(&index, again.clone()).await;
    upsert(&index, again).await;
    assert_eq!(index.num_docs(), before, "one document per message");
    assert_eq!(ids(&index, &query("简单", &[(a.clone(), 0)])), [1]);

    let mut week = msg(20, &a, 20, 1, "ephemeral 简单");
    week.persistence = Persistence::Days(1);
    upsert(&index, vec![week]).await;
    let mut q = query("ephemeral", &[(a.clone(), 0)]);
    q.now = 1_000;
    assert_eq!(ids(&index, &q), [20]);
    q.now = 1_020 + 86_400_000;
    assert!(ids(&index, &q).is_empty(), "expired: filtered at once");
    let expire_before = Some(1_021 + 86_400_000);
    index
        .apply(Batch {
            delete: Vec::new(),
            upsert: vec![],
            expire_before,
        })
        .await
        .unwrap();
    assert_eq!(index.num_docs(), before, "and deleted by the sweep");
}

#[tokio::test]
async fn pages_by_cursor_newest_first_and_by_relevance() {
    let index = SearchIndex::in_memory(Segmenter::Bigram).unwrap();
    let a = ConvId::group(GroupId(9));
    let msgs: Vec<Message> = (1..=50)
        .map(|i| msg(i, &a, i, 1, &format!("report {i} 报告")))
        .collect();
    upsert(&index, msgs).await;
    // The caller joined at 10: the first ten are not theirs to see.
    for ranking in [Ranking::Newest, Ranking::Relevance] {
        let mut q = query("报告", &[(a.clone(), 10)]);
        q.limit = 7;
        q.ranking = ranking;
        let mut seen = Vec::new();
        loop {
            let page = index.search(&q).unwrap();
            assert!(page.hits.len() <= 7);
            seen.extend(page.hits.iter().map(|h| h.seq));
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted,
            (11..=50).collect::<Vec<_>>(),
            "{ranking:?}: each once"
        );
        assert_eq!(seen.len(), 40);
        if ranking == Ranking::Newest {
            assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
        }
    }
}

#[tokio::test]
async fn snippets_mark_the_matches() {
    let (index, a, _) = corpus().await;
    let found = index.search(&query("鲍勃", &[(a, 0)])).unwrap();
    let snippet = &found.hits[0].snippet;
    let hits: Vec<&str> = snippet
        .iter()
        .filter(|f| f.hit)
        .map(|f| f.text.as_str())
        .collect();
    assert_eq!(hits, ["鲍勃"]);
    let all: String = snippet.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(all, "你好，鲍勃");
}

#[tokio::test]
async fn a_reopened_index_keeps_what_was_applied() {
    let dir = tempfile::tempdir().unwrap();
    let a = ConvId::direct(UserId(1), UserId(2));
    {
        let index = SearchIndex::open(dir.path(), Segmenter::Bigram).unwrap();
        assert!(index.fresh());
        upsert(&index, vec![msg(1, &a, 1, 1, "安装简单")]).await;
    }
    let index = SearchIndex::open(dir.path(), Segmenter::Bigram).unwrap();
    assert!(!index.fresh());
    assert_eq!(ids(&index, &query("简单", &[(a.clone(), 0)])), [1]);

    // Written again after the reopen (a redelivery, an edit): replaced,
    // whether its id is the highest the index holds or below a newer one
    // (server ids of several nodes arrive out of order).
    upsert(&index, vec![msg(1, &a, 1, 1, "安装 edited")]).await;
    upsert(&index, vec![msg(9, &a, 3, 2, "later 简单")]).await;
    upsert(&index, vec![msg(5, &a, 2, 1, "late 简单")]).await;
    upsert(
        &index,
        vec![
            msg(5, &a, 2, 1, "late 简单"),
            msg(9, &a, 3, 2, "later 简单"),
        ],
    )
    .await;
    assert_eq!(index.num_docs(), 3, "one document per message");
    assert_eq!(ids(&index, &query("简单", &[(a.clone(), 0)])), [9, 5]);
    assert_eq!(ids(&index, &query("edited", &[(a, 0)])), [1]);
}

#[tokio::test]
async fn staged_work_is_seen_only_after_its_commit() {
    let index = SearchIndex::in_memory(Segmenter::Bigram).unwrap();
    let a = ConvId::direct(UserId(1), UserId(2));
    let epoch = index.epoch();
    for (id, body) in [(1, "staged 暂存"), (2, "staged again")] {
        let upsert = vec![msg(id, &a, id, 1, body)];
        index
            .stage(Batch {
                delete: Vec::new(),
                upsert,
                expire_before: None,
            })
            .await
            .unwrap();
    }
    assert!(ids(&index, &query("staged", &[(a.clone(), 0)])).is_empty());
    assert_eq!(index.commit().await.unwrap(), epoch, "nothing rolled back");
    assert_eq!(ids(&index, &query("staged", &[(a.clone(), 0)])), [2, 1]);
    // A commit with nothing staged is a no-op that answers the same epoch.
    assert_eq!(index.commit().await.unwrap(), epoch);
}

#[tokio::test]
async fn an_id_below_the_highest_staged_twice_before_a_commit_stays_one() {
    // Ids of concurrent sends reach the indexer out of order; one staged
    // twice between commits (a redelivery) is not yet in any segment the
    // reader sees, and must still replace itself.
    let index = SearchIndex::in_memory(Segmenter::Bigram).unwrap();
    let a = ConvId::direct(UserId(1), UserId(2));
    upsert(&index, vec![msg(1, &a, 1, 1, "first 一")]).await;
    for batch in [
        vec![msg(9, &a, 3, 1, "nine 九")],
        vec![msg(5, &a, 2, 1, "five 五")],
        vec![msg(5, &a, 2, 1, "five 五 again")],
    ] {
        let batch = Batch {
            upsert: batch,
            ..Batch::default()
        };
        index.stage(batch).await.unwrap();
    }
    index.commit().await.unwrap();
    assert_eq!(index.num_docs(), 3, "one document per message");
    assert_eq!(ids(&index, &query("again", &[(a.clone(), 0)])), [5]);
    assert_eq!(ids(&index, &query("five", &[(a, 0)])), [5]);
}

#[tokio::test]
async fn an_index_written_by_another_tokenizer_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let a = ConvId::direct(UserId(1), UserId(2));
    {
        let index = SearchIndex::open(dir.path(), Segmenter::Bigram).unwrap();
        let upsert = vec![msg(1, &a, 1, 1, "安装简单")];
        let batch = Batch {
            delete: Vec::new(),
            upsert,
            expire_before: None,
        };
        index.apply(batch).await.unwrap();
    }
    let again = SearchIndex::open(dir.path(), Segmenter::Bigram).unwrap();
    assert!(!again.fresh(), "same tokenizer: kept");
    drop(again);
    #[cfg(feature = "jieba")]
    {
        // Only the index's own files go: search.dir may hold others.
        std::fs::write(dir.path().join("keep.txt"), "not the index's").unwrap();
        let other = SearchIndex::open(dir.path(), Segmenter::Jieba).unwrap();
        assert!(other.fresh(), "another tokenizer: dropped, to be rebuilt");
        assert_eq!(other.num_docs(), 0);
        assert!(dir.path().join("keep.txt").exists());
        let upsert = vec![msg(2, &a, 2, 1, "安装简单")];
        let batch = Batch {
            delete: Vec::new(),
            upsert,
            expire_before: None,
        };
        other.apply(batch).await.unwrap();
        assert_eq!(ids(&other, &query("简单", &[(a.clone(), 0)])), [2]);
        drop(other);
        let back = SearchIndex::open(dir.path(), Segmenter::Jieba).unwrap();
        assert!(!back.fresh(), "its own tokenizer: kept");
    }
}

#[cfg(feature = "jieba")]
#[tokio::test]
async fn jieba_finds_chinese_words_and_keeps_latin_words() {
    let index = SearchIndex::in_memory(Segmenter::Jieba).unwrap();
    let a = ConvId::direct(UserId(1), UserId(2));
    let msgs = vec![
        msg(1, &a, 1, 1, "这个软件安装简单"),
        msg(2, &a, 2, 2, "我来到北京清华大学"),
        msg(3, &a, 3, 1, "iPhone价格太贵了 running"),
        msg(4, &a, 4, 2, "中华人民共和国成立了"),
        msg(5, &a, 5, 1, "你好，鲍勃"),
    ];
    upsert(&index, msgs).await;
    let scope = [(a.clone(), 0)];
    assert_eq!(ids(&index, &query("简单", &scope)), [1]);
    assert_eq!(ids(&index, &query("安装", &scope)), [1]);
    assert_eq!(ids(&index, &query("鲍勃", &scope)), [5]);
    assert_eq!(ids(&index, &query("清华大学", &scope)), [2]);
    // Search mode indexes the words inside a long word too.
    assert_eq!(ids(&index, &query("大学", &scope)), [2]);
    assert_eq!(ids(&index, &query("共和国", &scope)), [4]);
    assert_eq!(ids(&index, &query("价格 iphone run", &scope)), [3]);
    // A word never cut out of any document is not found (the trade-off
    // against bigrams, docs/search.md): 京清 straddles 北京 and 清华.
    assert!(ids(&index, &query("京清", &scope)).is_empty());
    let hit = &index.search(&query("北京", &scope)).unwrap().hits[0];
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|f| f.hit)
        .map(|f| f.text.as_str())
        .collect();
    assert_eq!(marked, ["北京"]);
}
