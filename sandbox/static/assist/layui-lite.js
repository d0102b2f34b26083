/* A small imitation of layui's form, table and layer.msg for the sandbox's 社会救助 system.
   Written for the sandbox; it copies no layui code, only the DOM shapes layui pages have. */
(function () {
  "use strict";

  const layer = {
    // A transient toast, as layer.msg draws it: in the body for `time` ms, then gone.
    msg(text, options) {
      const opts = options || {};
      const box = document.createElement("div");
      box.className = "layui-layer layui-layer-msg";
      const content = document.createElement("div");
      content.className = "layui-layer-content";
      content.textContent = text;
      box.appendChild(content);
      document.body.appendChild(box);
      setTimeout(() => { box.remove(); if (opts.end) opts.end(); }, opts.time ?? 2000);
      return box;
    },
  };

  const form = {
    // form.on("submit(login)", fn): a click on [lay-submit][lay-filter=login] checks the
    // lay-verify="required" inputs of its .layui-form, then calls fn({elem, field}).
    on(event, handler) {
      const filter = /^submit\((.+)\)$/.exec(event);
      if (!filter) return;
      document.querySelectorAll(`[lay-submit][lay-filter="${filter[1]}"]`).forEach((button) => {
        const scope = button.closest(".layui-form") || document.body;
        button.addEventListener("click", () => {
          const field = {};
          for (const input of scope.querySelectorAll("input[name]")) {
            if (input.getAttribute("lay-verify") === "required" && !input.value.trim()) {
              layer.msg("必填项不能为空");
              input.focus();
              return;
            }
            field[input.name] = input.value;
          }
          handler({ elem: button, field });
        });
        // layui forms are no <form>: Enter in a field would do nothing without this.
        scope.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target.matches("input")) button.click(); });
      });
    },
  };

  function cell(tag, field, text) {
    const el = document.createElement(tag);
    if (field) el.dataset.field = field;
    const div = document.createElement("div");
    div.className = "layui-table-cell";
    div.textContent = text ?? "";
    el.appendChild(div);
    return el;
  }

  function pageLinks(curr, pages) {
    const shown = [...new Set([1, pages, curr - 2, curr - 1, curr, curr + 1, curr + 2])]
      .filter((n) => n >= 1 && n <= pages).sort((a, b) => a - b);
    const links = [];
    for (const n of shown) {
      if (links.length && n - links[links.length - 1] > 1) links.push(null);
      links.push(n);
    }
    return links;
  }

  const table = {
    // table.render({elem, url, limit, cols: [[{field, title}]], done(res, curr, count)}): the
    // original <table> is hidden and a layui-table-view with a header, a body and a laypage drawn after it.
    render(options) {
      const origin = document.querySelector(options.elem);
      const cols = options.cols[0];
      const limit = options.limit || 10;
      const view = document.createElement("div");
      view.className = "layui-form layui-border-box layui-table-view";
      view.setAttribute("lay-id", origin.id);
      origin.style.display = "none";
      origin.after(view);

      const headRow = document.createElement("tr");
      for (const col of cols) headRow.appendChild(cell("th", col.field, col.title));
      view.innerHTML = '<div class="layui-table-box"><div class="layui-table-header"><table class="layui-table"><thead></thead></table></div>'
        + '<div class="layui-table-body layui-table-main"><table class="layui-table"><tbody></tbody></table></div></div>'
        + '<div class="layui-table-page"></div>';
      view.querySelector("thead").appendChild(headRow);
      const tbody = view.querySelector("tbody");
      const pager = view.querySelector(".layui-table-page");

      const empty = document.createElement("div");
      empty.className = "layui-none";

      function none(text) {
        tbody.replaceChildren();
        pager.replaceChildren();
        empty.textContent = text;
        tbody.closest(".layui-table-body").appendChild(empty);
      }

      function drawPager(curr, count) {
        const pages = Math.max(1, Math.ceil(count / limit));
        const box = document.createElement("div");
        box.className = "layui-laypage layui-laypage-default";
        const link = (text, page, cls) => {
          const a = document.createElement("a");
          a.href = "javascript:;";
          a.textContent = text;
          if (cls) a.className = cls;
          if (page === null) a.classList.add("layui-disabled"); else a.dataset.page = page;
          box.appendChild(a);
        };
        link("上一页", curr > 1 ? curr - 1 : null, "layui-laypage-prev");
        for (const n of pageLinks(curr, pages)) {
          if (n === null) {
            const gap = document.createElement("span");
            gap.className = "layui-laypage-spr";
            gap.textContent = "…";
            box.appendChild(gap);
          } else if (n === curr) {
            const span = document.createElement("span");
            span.className = "layui-laypage-curr";
            span.innerHTML = '<em class="layui-laypage-em"></em>';
            const em = document.createElement("em");
            em.textContent = n;
            span.appendChild(em);
            box.appendChild(span);
          } else {
            link(String(n), n);
          }
        }
        link("下一页", curr < pages ? curr + 1 : null, "layui-laypage-next");
        const total = document.createElement("span");
        total.className = "layui-laypage-count";
        total.textContent = `共 ${count} 条`;
        box.appendChild(total);
        box.addEventListener("click", (e) => { const a = e.target.closest("a[data-page]"); if (a) load(Number(a.dataset.page)); });
        pager.replaceChildren(box);
      }

      async function load(curr) {
        const query = new URLSearchParams({ ...(options.where || {}), page: curr, limit });
        let res;
        try {
          const response = await fetch(`${options.url}?${query}`, { headers: { "X-Requested-With": "XMLHttpRequest" } });
          if (!response.ok) { none(`数据接口请求异常：${response.status}`); return; }
          res = await response.json();
        } catch (err) {
          none("数据接口请求异常：网络错误");
          return;
        }
        if (res.code !== 0) {
          none(res.msg || "数据接口返回错误");
        } else {
          empty.remove();
          tbody.replaceChildren(...res.data.map((row, i) => {
            const tr = document.createElement("tr");
            tr.dataset.index = i;
            for (const col of cols) tr.appendChild(cell("td", col.field, row[col.field]));
            return tr;
          }));
          if (!res.data.length) none("无数据");
          drawPager(curr, res.count);
        }
        if (options.done) options.done(res, curr, res.count);
      }

      load(1);
      return { reload: () => load(1) };
    },
  };

  window.layui = { layer, form, table };
  window.layer = layer;
})();
