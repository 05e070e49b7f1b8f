var ae,k,Be,qt,F,Ue,We,qe,ge,Z,q,Ve,ye,ve,be,Vt,ne={},re=[],Jt=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,se=Array.isArray;function j(e,t){for(var n in t)e[n]=t[n];return e}function we(e){e&&e.parentNode&&e.parentNode.removeChild(e)}function xe(e,t,n){var r,s,o,a={};for(o in t)o=="key"?r=t[o]:o=="ref"?s=t[o]:a[o]=t[o];if(arguments.length>2&&(a.children=arguments.length>3?ae.call(arguments,2):n),typeof e=="function"&&e.defaultProps!=null)for(o in e.defaultProps)a[o]===void 0&&(a[o]=e.defaultProps[o]);return ee(e,a,r,s,null)}function ee(e,t,n,r,s){var o={type:e,props:t,key:n,ref:r,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:s??++Be,__i:-1,__u:0};return s==null&&k.vnode!=null&&k.vnode(o),o}function ie(e){return e.children}function te(e,t){this.props=e,this.context=t}function I(e,t){if(t==null)return e.__?I(e.__,e.__i+1):null;for(var n;t<e.__k.length;t++)if((n=e.__k[t])!=null&&n.__e!=null)return n.__e;return typeof e.type=="function"?I(e):null}function Gt(e){if(e.__P&&e.__d){var t=e.__v,n=t.__e,r=[],s=[],o=j({},t);o.__v=t.__v+1,k.vnode&&k.vnode(o),ke(e.__P,o,t,e.__n,e.__P.namespaceURI,32&t.__u?[n]:null,r,n??I(t),!!(32&t.__u),s),o.__v=t.__v,o.__.__k[o.__i]=o,Ye(r,o,s),t.__e=t.__=null,o.__e!=n&&Je(o)}}function Je(e){if((e=e.__)!=null&&e.__c!=null)return e.__e=e.__c.base=null,e.__k.some(function(t){if(t!=null&&t.__e!=null)return e.__e=e.__c.base=t.__e}),Je(e)}function De(e){(!e.__d&&(e.__d=!0)&&F.push(e)&&!oe.__r++||Ue!=k.debounceRendering)&&((Ue=k.debounceRendering)||We)(oe)}function oe(){try{for(var e,t=1;F.length;)F.length>t&&F.sort(qe),e=F.shift(),t=F.length,Gt(e)}finally{F.length=oe.__r=0}}function Ge(e,t,n,r,s,o,a,i,u,p,_){var m,l,f,$,y,w,b=r&&r.__k||re,c=t.length;for(u=Kt(n,t,b,u,c),m=0;m<c;m++)(f=n.__k[m])!=null&&(l=f.__i!=-1&&b[f.__i]||ne,f.__i=m,w=ke(e,f,l,s,o,a,i,u,p,_),$=f.__e,f.ref&&l.ref!=f.ref&&(l.ref&&Se(l.ref,null,f),_.push(f.ref,f.__c||$,f)),y==null&&$!=null&&(y=$),4&f.__u?(u=Ke(f,u,e),l.__e&&(l.__e=null)):typeof f.type=="function"&&w!==void 0?u=w:$&&(u=$.nextSibling),f.__u&=-7);return n.__e=y,u}function Kt(e,t,n,r,s){var o,a,i,u,p,_=n.length,m=_,l=0;for(e.__k=new Array(s),o=0;o<s;o++)(a=t[o])!=null&&typeof a!="boolean"&&typeof a!="function"?(typeof a=="string"||typeof a=="number"||typeof a=="bigint"||a.constructor==String?a=e.__k[o]=ee(null,a,null,null,null):se(a)?a=e.__k[o]=ee(ie,{children:a},null,null,null):a.constructor===void 0&&a.__b>0?a=e.__k[o]=ee(a.type,a.props,a.key,a.ref?a.ref:null,a.__v):e.__k[o]=a,u=o+l,a.__=e,a.__b=e.__b+1,i=null,(p=a.__i=Xt(a,n,u,m))!=-1&&(m--,(i=n[p])&&(i.__u|=2)),i==null||i.__v==null?(p==-1&&(s>_?l--:s<_&&l++),typeof a.type!="function"&&(a.__u|=4)):p!=u&&(p==u-1?l--:p==u+1?l++:(p>u?l--:l++,a.__u|=4))):e.__k[o]=null;if(m)for(o=0;o<_;o++)(i=n[o])!=null&&!(2&i.__u)&&(i.__e==r&&(r=I(i)),Ze(i,i));return r}function Ke(e,t,n){var r,s;if(typeof e.type=="function"){for(r=e.__k,s=0;r&&s<r.length;s++)r[s]&&(r[s].__=e,t=Ke(r[s],t,n));return t}e.__e!=t&&(t&&e.type&&!t.parentNode&&(t=I(e)),t=n.insertBefore(e.__e,t||null));do t=t&&t.nextSibling;while(t!=null&&t.nodeType==8);return t}function Xt(e,t,n,r){var s,o,a,i=e.key,u=e.type,p=t[n],_=p!=null&&(2&p.__u)==0;if(p===null&&i==null||_&&i==p.key&&u==p.type)return n;if(r>(_?1:0)){for(s=n-1,o=n+1;s>=0||o<t.length;)if((p=t[a=s>=0?s--:o++])!=null&&!(2&p.__u)&&i==p.key&&u==p.type)return a}return-1}function Ie(e,t,n){t[0]=="-"?e.setProperty(t,n??""):e[t]=n==null?"":typeof n!="number"||Jt.test(t)?n:n+"px"}function Q(e,t,n,r,s){var o,a;e:if(t=="style")if(typeof n=="string")e.style.cssText=n;else{if(typeof r=="string"&&(e.style.cssText=r=""),r)for(t in r)n&&t in n||Ie(e.style,t,"");if(n)for(t in n)r&&n[t]==r[t]||Ie(e.style,t,n[t])}else if(t[0]=="o"&&t[1]=="n")o=t!=(t=t.replace(Ve,"$1")),a=t.toLowerCase(),t=a in e||t=="onFocusOut"||t=="onFocusIn"?a.slice(2):t.slice(2),e.l||(e.l={}),e.l[t+o]=n,n?r?n[q]=r[q]:(n[q]=ye,e.addEventListener(t,o?be:ve,o)):e.removeEventListener(t,o?be:ve,o);else{if(s=="http://www.w3.org/2000/svg")t=t.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(t!="width"&&t!="height"&&t!="href"&&t!="list"&&t!="form"&&t!="tabIndex"&&t!="download"&&t!="rowSpan"&&t!="colSpan"&&t!="role"&&t!="popover"&&t in e)try{e[t]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&t[4]!="-"?e.removeAttribute(t):e.setAttribute(t,t=="popover"&&n==1?"":n))}}function ze(e){return function(t){if(this.l){var n=this.l[t.type+e];if(t[Z]==null)t[Z]=ye++;else if(t[Z]<n[q])return;return n(k.event?k.event(t):t)}}}function ke(e,t,n,r,s,o,a,i,u,p){var _,m,l,f,$,y,w,b,c,h,g,C,x,O,S,D,R=t.type;if(t.constructor!==void 0)return null;128&n.__u&&(u=!!(32&n.__u),o=[i=t.__e=n.__e]),(_=k.__b)&&_(t);e:if(typeof R=="function"){m=a.length;try{if(c=t.props,h=R.prototype&&R.prototype.render,g=(_=R.contextType)&&r[_.__c],C=_?g?g.props.value:_.__:r,n.__c?b=(l=t.__c=n.__c).__=l.__E:(h?t.__c=l=new R(c,C):(t.__c=l=new te(c,C),l.constructor=R,l.render=Qt),g&&g.sub(l),l.state||(l.state={}),l.__n=r,f=l.__d=!0,l.__h=[],l._sb=[]),h&&l.__s==null&&(l.__s=l.state),h&&R.getDerivedStateFromProps!=null&&(l.__s==l.state&&(l.__s=j({},l.__s)),j(l.__s,R.getDerivedStateFromProps(c,l.__s))),$=l.props,y=l.state,l.__v=t,f)h&&R.getDerivedStateFromProps==null&&l.componentWillMount!=null&&l.componentWillMount(),h&&l.componentDidMount!=null&&l.__h.push(l.componentDidMount);else{if(h&&R.getDerivedStateFromProps==null&&c!==$&&l.componentWillReceiveProps!=null&&l.componentWillReceiveProps(c,C),t.__v==n.__v||!l.__e&&l.shouldComponentUpdate!=null&&l.shouldComponentUpdate(c,l.__s,C)===!1){t.__v!=n.__v&&(l.props=c,l.state=l.__s,l.__d=!1),t.__e=n.__e,t.__k=n.__k,t.__k.some(function(B){B&&(B.__=t)}),re.push.apply(l.__h,l._sb),l._sb=[],l.__h.length&&a.push(l),i=I(n);break e}l.componentWillUpdate!=null&&l.componentWillUpdate(c,l.__s,C),h&&l.componentDidUpdate!=null&&l.__h.push(function(){l.componentDidUpdate($,y,w)})}if(l.context=C,l.props=c,l.__P=e,l.__e=!1,x=k.__r,O=0,h)l.state=l.__s,l.__d=!1,x&&x(t),_=l.render(l.props,l.state,l.context),re.push.apply(l.__h,l._sb),l._sb=[];else do l.__d=!1,x&&x(t),_=l.render(l.props,l.state,l.context),l.state=l.__s;while(l.__d&&++O<25);l.state=l.__s,l.getChildContext!=null&&(r=j(j({},r),l.getChildContext())),h&&!f&&l.getSnapshotBeforeUpdate!=null&&(w=l.getSnapshotBeforeUpdate($,y)),S=_!=null&&_.type===ie&&_.key==null?Qe(_.props.children):_,i=Ge(e,se(S)?S:[S],t,n,r,s,o,a,i,u,p),l.base=t.__e,t.__u&=-161,l.__h.length&&a.push(l),b&&(l.__E=l.__=null)}catch(B){if(a.length=m,t.__v=null,u||o!=null){if(B.then){for(t.__u|=u?160:128;i&&i.nodeType==8&&i.nextSibling;)i=i.nextSibling;o!=null&&(o[o.indexOf(i)]=null),t.__e=i}else if(o!=null)for(D=o.length;D--;)we(o[D])}else t.__e=n.__e;t.__k==null&&(t.__k=n.__k||[]),B.then||Xe(t),k.__e(B,t,n)}}else o==null&&t.__v==n.__v?(t.__k=n.__k,t.__e=n.__e):i=t.__e=Yt(n.__e,t,n,r,s,o,a,u,p);return(_=k.diffed)&&_(t),128&t.__u?void 0:i}function Xe(e){e&&(e.__c&&(e.__c.__e=!0),e.__k&&e.__k.some(Xe))}function Ye(e,t,n){for(var r=0;r<n.length;r++)Se(n[r],n[++r],n[++r]);k.__c&&k.__c(t,e),e.some(function(s){try{e=s.__h,s.__h=[],e.some(function(o){o.call(s)})}catch(o){k.__e(o,s.__v)}})}function Qe(e){return typeof e!="object"||e==null||e.__b>0?e:se(e)?e.map(Qe):e.constructor!==void 0?null:j({},e)}function Yt(e,t,n,r,s,o,a,i,u){var p,_,m,l,f,$,y,w=n.props||ne,b=t.props,c=t.type;if(c=="svg"?s="http://www.w3.org/2000/svg":c=="math"?s="http://www.w3.org/1998/Math/MathML":s||(s="http://www.w3.org/1999/xhtml"),o!=null){for(p=0;p<o.length;p++)if((f=o[p])&&"setAttribute"in f==!!c&&(c?f.localName==c:f.nodeType==3)){e=f,o[p]=null;break}}if(e==null){if(c==null)return document.createTextNode(b);e=document.createElementNS(s,c,b.is&&b),i&&(k.__m&&k.__m(t,o),i=!1),o=null}if(c==null)w===b||i&&e.data==b||(e.data=b);else{if(o=c=="textarea"&&b.defaultValue!=null?null:o&&ae.call(e.childNodes),!i&&o!=null)for(w={},p=0;p<e.attributes.length;p++)w[(f=e.attributes[p]).name]=f.value;for(p in w)f=w[p],p=="dangerouslySetInnerHTML"?m=f:p=="children"||p in b||p=="value"&&"defaultValue"in b||p=="checked"&&"defaultChecked"in b||Q(e,p,null,f,s);for(p in b)f=b[p],p=="children"?l=f:p=="dangerouslySetInnerHTML"?_=f:p=="value"?$=f:p=="checked"?y=f:i&&typeof f!="function"||w[p]===f||Q(e,p,f,w[p],s);if(_)i||m&&(_.__html==m.__html||_.__html==e.innerHTML)||(e.innerHTML=_.__html),t.__k=[];else if(m&&(e.innerHTML=""),Ge(t.type=="template"?e.content:e,se(l)?l:[l],t,n,r,c=="foreignObject"?"http://www.w3.org/1999/xhtml":s,o,a,o?o[0]:n.__k&&I(n,0),i,u),o!=null)for(p=o.length;p--;)we(o[p]);i&&c!="textarea"||(p="value",c=="progress"&&$==null?e.removeAttribute("value"):$!=null&&($!==e[p]||c=="progress"&&!$||c=="option"&&$!=w[p])&&Q(e,p,$,w[p],s),p="checked",y!=null&&y!=e[p]&&Q(e,p,y,w[p],s))}return e}function Se(e,t,n){try{if(typeof e=="function"){var r=typeof e.__u=="function";r&&e.__u(),r&&t==null||(e.__u=e(t))}else e.current=t}catch(s){k.__e(s,n)}}function Ze(e,t,n){var r,s;if(k.unmount&&k.unmount(e),(r=e.ref)&&(r.current&&r.current!=e.__e||Se(r,null,t)),(r=e.__c)!=null){if(r.componentWillUnmount)try{r.componentWillUnmount()}catch(o){k.__e(o,t)}r.base=r.__P=r.__n=null}if(r=e.__k)for(s=0;s<r.length;s++)r[s]&&Ze(r[s],t,n||typeof e.type!="function");n||we(e.__e),e.__c=e.__=e.__e=void 0}function Qt(e,t,n){return this.constructor(e,n)}function et(e,t,n){var r,s,o,a;t==document&&(t=document.documentElement),k.__&&k.__(e,t),s=(r=typeof n=="function")?null:n&&n.__k||t.__k,o=[],a=[],ke(t,e=(!r&&n||t).__k=xe(ie,null,[e]),s||ne,ne,t.namespaceURI,!r&&n?[n]:s?null:t.firstChild?ae.call(t.childNodes):null,o,!r&&n?n:s?s.__e:t.firstChild,r,a),Ye(o,e,a),e.props.children=null}ae=re.slice,k={__e:function(e,t,n,r){for(var s,o,a;t=t.__;)if((s=t.__c)&&!s.__)try{if((o=s.constructor)&&o.getDerivedStateFromError!=null&&(s.setState(o.getDerivedStateFromError(e)),a=s.__d),s.componentDidCatch!=null&&(s.componentDidCatch(e,r||{}),a=s.__d),a)return s.__E=s}catch(i){e=i}throw e}},Be=0,qt=function(e){return e!=null&&e.constructor===void 0},te.prototype.setState=function(e,t){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=j({},this.state),typeof e=="function"&&(e=e(j({},n),this.props)),e&&j(n,e),e!=null&&this.__v&&(t&&this._sb.push(t),De(this))},te.prototype.forceUpdate=function(e){this.__v&&(this.__e=!0,e&&this.__h.push(e),De(this))},te.prototype.render=ie,F=[],We=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,qe=function(e,t){return e.__v.__b-t.__v.__b},oe.__r=0,ge=Math.random().toString(8),Z="__d"+ge,q="__a"+ge,Ve=/(PointerCapture)$|Capture$/i,ye=0,ve=ze(!1),be=ze(!0),Vt=0;var V,E,Ce,tt,J=0,ct=[],T=k,nt=T.__b,rt=T.__r,ot=T.diffed,at=T.__c,st=T.unmount,it=T.__;function Te(e,t){T.__h&&T.__h(E,e,J||t),J=0;var n=E.__H||(E.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function v(e){return J=1,Zt(pt,e)}function Zt(e,t,n){var r=Te(V++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):pt(void 0,t),function(i){var u=r.__N?r.__N[0]:r.__[0],p=r.t(u,i);u!==p&&(r.__N=[p,r.__[1]],r.__c.setState({}))}],r.__c=E,!E.__f)){var s=function(i,u,p){if(!r.__c.__H)return!0;var _=!1,m=r.__c.props!==i;if(r.__c.__H.__.some(function(f){if(f.__N){_=!0;var $=f.__[0];f.__=f.__N,f.__N=void 0,$!==f.__[0]&&(m=!0)}}),o){var l=o.call(this,i,u,p);return _?l||m:l}return!_||m};E.__f=!0;var o=E.shouldComponentUpdate,a=E.componentWillUpdate;E.componentWillUpdate=function(i,u,p){if(this.__e){var _=o;o=void 0,s(i,u,p),o=_}a&&a.call(this,i,u,p)},E.shouldComponentUpdate=s}return r.__N||r.__}function P(e,t){var n=Te(V++,3);!T.__s&&ut(n.__H,t)&&(n.__=e,n.u=t,E.__H.__h.push(n))}function G(e){return J=5,ce(function(){return{current:e}},[])}function ce(e,t){var n=Te(V++,7);return ut(n.__H,t)&&(n.__=e(),n.__H=t,n.__h=e),n.__}function dt(e,t){return J=8,ce(function(){return e},t)}function en(){for(var e;e=ct.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(le),t.__h.some(Ee),t.__h=[]}catch(n){t.__h=[],T.__e(n,e.__v)}}}T.__b=function(e){E=null,nt&&nt(e)},T.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),it&&it(e,t)},T.__r=function(e){rt&&rt(e),V=0;var t=(E=e.__c).__H;t&&(Ce===E?(t.__h=[],E.__h=[],t.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(t.__h.some(le),t.__h.some(Ee),t.__h=[],V=0)),Ce=E},T.diffed=function(e){ot&&ot(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&(ct.push(t)!==1&&tt===T.requestAnimationFrame||((tt=T.requestAnimationFrame)||tn)(en)),t.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),Ce=E=null},T.__c=function(e,t){t.some(function(n){try{n.__h.some(le),n.__h=n.__h.filter(function(r){return!r.__||Ee(r)})}catch(r){t.some(function(s){s.__h&&(s.__h=[])}),t=[],T.__e(r,n.__v)}}),at&&at(e,t)},T.unmount=function(e){st&&st(e);var t,n=e.__c;n&&n.__H&&(n.__H.__.some(function(r){try{le(r)}catch(s){t=s}}),n.__H=void 0,t&&T.__e(t,n.__v))};var lt=typeof requestAnimationFrame=="function";function tn(e){var t,n=function(){clearTimeout(r),lt&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);lt&&(t=requestAnimationFrame(n))}function le(e){var t=E,n=e.__c;typeof n=="function"&&(e.__c=void 0,n()),E=t}function Ee(e){var t=E;e.__c=e.__(),E=t}function ut(e,t){return!e||e.length!==t.length||t.some(function(n,r){return n!==e[r]})}function pt(e,t){return typeof t=="function"?t(e):t}var Pe="spillway.token",de=sessionStorage.getItem(Pe)||"",Le=new Set,Oe=class extends Error{constructor(t,n,r){super(r),this.status=t,this.code=n}};function Me(){return de}function W(e){de=e,e?sessionStorage.setItem(Pe,e):sessionStorage.removeItem(Pe)}function ft(e){return Le.add(e),()=>Le.delete(e)}function ue(){return de?{Authorization:`Bearer ${de}`}:{}}async function _t(e){let t="http_"+e.status,n=e.statusText||`HTTP ${e.status}`;try{let s=await e.json();s&&s.error&&({code:t,message:n}=s.error)}catch{}let r=new Oe(e.status,t,n);return e.status===401&&Le.forEach(s=>s(r)),r}async function L(e,{method:t="GET",body:n,signal:r}={}){let s={...ue()};n!==void 0&&(s["Content-Type"]="application/json");let o=await fetch(e,{method:t,headers:s,signal:r,body:n===void 0?void 0:JSON.stringify(n)});if(!o.ok)throw await _t(o);return o.json()}async function mt(e,t){let n=await fetch(e,{headers:ue(),signal:t});if(!n.ok)throw await _t(n);return URL.createObjectURL(await n.blob())}var $t=function(e,t,n,r){var s;t[0]=0;for(var o=1;o<t.length;o++){var a=t[o++],i=t[o]?(t[0]|=a?1:2,n[t[o++]]):t[++o];a===3?r[0]=i:a===4?r[1]=Object.assign(r[1]||{},i):a===5?(r[1]=r[1]||{})[t[++o]]=i:a===6?r[1][t[++o]]+=i+"":a?(s=e.apply(i,$t(e,i,n,["",null])),r.push(s),i[0]?t[0]|=2:(t[o-2]=0,t[o]=s)):r.push(i)}return r},ht=new Map;function gt(e){var t=ht.get(this);return t||(t=new Map,ht.set(this,t)),(t=$t(this,t.get(e)||(t.set(e,t=function(n){for(var r,s,o=1,a="",i="",u=[0],p=function(l){o===1&&(l||(a=a.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?u.push(0,l,a):o===3&&(l||a)?(u.push(3,l,a),o=2):o===2&&a==="..."&&l?u.push(4,l,0):o===2&&a&&!l?u.push(5,0,!0,a):o>=5&&((a||!l&&o===5)&&(u.push(o,0,a,s),o=6),l&&(u.push(o,l,0,s),o=6)),a=""},_=0;_<n.length;_++){_&&(o===1&&p(),p(_));for(var m=0;m<n[_].length;m++)r=n[_][m],o===1?r==="<"?(p(),u=[u],o=3):a+=r:o===4?a==="--"&&r===">"?(o=1,a=""):a=r+a[0]:i?r===i?i="":a+=r:r==='"'||r==="'"?i=r:r===">"?(p(),o=1):o&&(r==="="?(o=5,s=a,a=""):r==="/"&&(o<5||n[_][m+1]===">")?(p(),o===3&&(u=u[0]),o=u,(u=u[0]).push(2,0,o),o=0):r===" "||r==="	"||r===`
`||r==="\r"?(p(),o=2):a+=r),o===3&&a==="!--"&&(o=4,u=u[0])}return p(),u}(e)),t),arguments,[])).length>1?t:t[0]}var d=gt.bind(xe);function A(e){if(e==null)return"";let t=Math.max(0,Math.round(e));return t<60?`${t}s`:t<3600?`${Math.floor(t/60)}m ${t%60}s`:t<86400?`${Math.floor(t/3600)}h ${Math.floor(t%3600/60)}m`:`${Math.floor(t/86400)}d ${Math.floor(t%86400/3600)}h`}function H(e){return e==null?"":A(Date.now()/1e3-e)}function pe(e){return e==null?"":new Date(e*1e3).toLocaleTimeString()}function K(e){if(e==null)return"";let t=["B","KiB","MiB","GiB","TiB"],n=e,r=0;for(;n>=1024&&r<t.length-1;)n/=1024,r+=1;return`${n.toFixed(r?1:0)} ${t[r]}`}function Re(e){return`${Math.round((e||0)*100)}%`}function X(e){let t=[...e].sort((s,o)=>s-o),n=[],r=0;for(;r<t.length;){let s=r;for(;s+1<t.length&&t[s+1]===t[s]+1;)s+=1;n.push(s>r?`${t[r]}-${t[s]}`:`${t[r]}`),r=s+1}return n.join(",")}var vt={w:"waiting",s:"dispatched",r:"running",d:"done",f:"failed"},bt={w:"#c9ced6",s:"#8fb8e8",r:"#2f7fd8",d:"#2e9e5b",f:"#d64541"};function nn(e){return e>4e3?7:e>1e3?10:e>200?14:22}function rn(e){let t=new Int32Array(e.frames.length),n=0;return e.tasks.size.forEach((r,s)=>{t.fill(s,n,n+r),n+=r}),t}function yt({grid:e,selected:t,onSelect:n}){let r=G(null),s=G(null),[o,a]=v(800),[i,u]=v(null),p=ce(()=>rn(e),[e]),_=e.frames.length,m=nn(_),l=Math.max(1,Math.floor(o/m)),f=Math.ceil(_/l);P(()=>{let c=new ResizeObserver(h=>a(Math.floor(h[0].contentRect.width)));return c.observe(s.current),()=>c.disconnect()},[]),P(()=>{let c=r.current,h=window.devicePixelRatio||1;c.width=l*m*h,c.height=f*m*h,c.style.width=`${l*m}px`,c.style.height=`${f*m}px`;let g=c.getContext("2d");g.setTransform(h,0,0,h,0,0),g.clearRect(0,0,l*m,f*m);let C=m>8?1:.5;for(let[x,O]of Object.entries(bt)){g.fillStyle=O;for(let S=e.states.indexOf(x);S!==-1;S=e.states.indexOf(x,S+1))g.fillRect(S%l*m,Math.floor(S/l)*m,m-C,m-C)}t.size&&(g.strokeStyle="#111",g.lineWidth=2,e.frames.forEach((x,O)=>{t.has(x)&&g.strokeRect(O%l*m+1,Math.floor(O/l)*m+1,m-3,m-3)}))},[e,l,f,m,t]);let $=c=>{let h=r.current.getBoundingClientRect(),g=Math.floor((c.clientX-h.left)/m),x=Math.floor((c.clientY-h.top)/m)*l+g;return g<l&&x>=0&&x<_?x:null},y=c=>{let h=$(c);if(h===null)return u(null);let g=s.current.getBoundingClientRect();u({i:h,x:c.clientX-g.left+14,y:c.clientY-g.top+14})},w=c=>{let h=$(c);h!==null&&n(e.frames[h],c.shiftKey)},b=null;if(i){let c=p[i.i],h=e.tasks,g=h.server[c]>=0?e.servers[h.server[c]]:"\u2014",C=h.started[c]==null?null:e.time_base+h.started[c],x=h.finished[c]==null?null:e.time_base+h.finished[c];b=d`<div class="tooltip" id="grid-tooltip" style=${{left:`${i.x}px`,top:`${i.y}px`}}>
      <b>frame ${e.frames[i.i]}</b> · ${vt[e.states[i.i]]}<br />
      task ${h.index[c]} · attempt ${h.attempt[c]}<br />
      server ${g}<br />
      ${C?d`started ${pe(C)}${x?d` · took ${A(x-C)}`:""}`:"not started"}
    </div>`}return d`<div class="grid-box" ref=${s} onMouseLeave=${()=>u(null)}>
    <canvas id="frame-grid" ref=${r} data-states=${e.states} onMouseMove=${y} onClick=${w}></canvas>
    ${b}
    <div class="legend">
      ${Object.entries(vt).map(([c,h])=>d`<span><i style=${{background:bt[c]}}></i>${h}</span>`)}
      ${t.size?d`<span class="selection">selected: ${X(t)}</span>`:d`<span class="dim">click frames to select, shift-click for a range</span>`}
    </div>
  </div>`}async function xt(e,t){let n=e.getReader(),r;for(;!(r=await n.read()).done;)t(r.value)}function kt(e){let t,n,r,s=!1;return function(a){t===void 0?(t=a,n=0,r=-1):t=on(t,a);let i=t.length,u=0;for(;n<i;){s&&(t[n]===10&&(u=++n),s=!1);let p=-1;for(;n<i&&p===-1;++n)switch(t[n]){case 58:r===-1&&(r=n-u);break;case 13:s=!0;case 10:p=n;break}if(p===-1)break;e(t.subarray(u,p),r),u=n,r=-1}u===i?t=void 0:u!==0&&(t=t.subarray(u),n-=u)}}function St(e,t,n){let r=wt(),s=new TextDecoder;return function(a,i){if(a.length===0)n?.(r),r=wt();else if(i>0){let u=s.decode(a.subarray(0,i)),p=i+(a[i+1]===32?2:1),_=s.decode(a.subarray(p));switch(u){case"data":r.data=r.data?r.data+`
`+_:_;break;case"event":r.event=_;break;case"id":e(r.id=_);break;case"retry":let m=parseInt(_,10);isNaN(m)||t(r.retry=m);break}}}}function on(e,t){let n=new Uint8Array(e.length+t.length);return n.set(e),n.set(t,e.length),n}function wt(){return{data:"",event:"",id:"",retry:void 0}}var an=function(e,t){var n={};for(var r in e)Object.prototype.hasOwnProperty.call(e,r)&&t.indexOf(r)<0&&(n[r]=e[r]);if(e!=null&&typeof Object.getOwnPropertySymbols=="function")for(var s=0,r=Object.getOwnPropertySymbols(e);s<r.length;s++)t.indexOf(r[s])<0&&Object.prototype.propertyIsEnumerable.call(e,r[s])&&(n[r[s]]=e[r[s]]);return n},fe="text/event-stream",sn=1e3,Ct="last-event-id";function je(e,t){var{signal:n,headers:r,onopen:s,onmessage:o,onclose:a,onerror:i,openWhenHidden:u,fetch:p}=t,_=an(t,["signal","headers","onopen","onmessage","onclose","onerror","openWhenHidden","fetch"]);return new Promise((m,l)=>{let f=Object.assign({},r);f.accept||(f.accept=fe);let $;function y(){$.abort(),document.hidden||C()}u||document.addEventListener("visibilitychange",y);let w=sn,b=0;function c(){document.removeEventListener("visibilitychange",y),window.clearTimeout(b),$.abort()}n?.addEventListener("abort",()=>{c(),m()});let h=p??window.fetch,g=s??ln;async function C(){var x;$=new AbortController;try{let O=await h(e,Object.assign(Object.assign({},_),{headers:f,signal:$.signal}));await g(O),await xt(O.body,kt(St(S=>{S?f[Ct]=S:delete f[Ct]},S=>{w=S},o))),a?.(),c(),m()}catch(O){if(!$.signal.aborted)try{let S=(x=i?.(O))!==null&&x!==void 0?x:w;window.clearTimeout(b),b=window.setTimeout(C,S)}catch(S){c(),l(S)}}}C()})}function ln(e){let t=e.headers.get("content-type");if(!t?.startsWith(fe))throw new Error(`Expected content-type to be ${fe}, Actual: ${t}`)}var Ae=new Set,z=null,Et=!1,Ne=new Set,_e=class extends Error{};function Y(e){Et=e,Ne.forEach(t=>t(e))}function cn(e){Ae.forEach(t=>t(e))}function Tt(e){z&&z.abort(),z=new AbortController,je("/api/v1/events",{headers:ue(),signal:z.signal,openWhenHidden:!0,async onopen(t){if(t.status===401)throw e(),new _e("unauthorized");if(!t.ok)throw new Error(`event stream: HTTP ${t.status}`);Y(!0)},onmessage(t){if(!t.event)return;let n=t.data?JSON.parse(t.data):{};cn({type:t.event,...n})},onclose(){throw Y(!1),new Error("event stream closed")},onerror(t){if(Y(!1),t instanceof _e)throw t;return 2e3}}).catch(()=>Y(!1))}function Pt(){z&&z.abort(),z=null,Y(!1)}function Lt(){let[e,t]=v(Et);return P(()=>(Ne.add(t),()=>Ne.delete(t)),[]),e}function U(e,t,n,r=500){P(()=>{let s={timer:null,last:0,running:!1,again:!1},o=!0,a=async()=>{if(o){if(s.running){s.again=!0;return}s.running=!0,s.last=Date.now();try{await e()}finally{s.running=!1,s.again&&o&&(s.again=!1,i())}}},i=()=>{if(s.timer)return;let p=Math.max(0,s.last+r-Date.now());s.timer=setTimeout(()=>{s.timer=null,a()},p)},u=p=>{(p.type==="hello"||t(p))&&i()};return Ae.add(u),a(),()=>{o=!1,Ae.delete(u),clearTimeout(s.timer),s.timer=null}},n)}function N({state:e}){return d`<span class=${`badge state-${e}`}>${e}</span>`}function he({job:e,wide:t}){let n=e.progress,r=n.tasks,s=Math.max(1,r.waiting+r.dispatched+r.running+r.done+r.failed),o=(a,i,u)=>a?d`<span class=${i} style=${{width:`${100*a/s}%`}} title=${`${a} ${u}`}></span>`:null;return d`<div class=${t?"progress wide":"progress"}>
    <div class="bar">
      ${o(r.done,"done","tasks done")}${o(r.running+r.dispatched,"running","tasks running")}
      ${o(r.failed,"failed","tasks failed")}
    </div>
    <span class="counts">
      <b>${n.frames_done}/${n.frames_total}</b>
      <span class="c-done" title="tasks done">${r.done}✓</span>
      <span class="c-running" title="tasks running">${r.running+r.dispatched}▶</span>
      <span class="c-failed" title="tasks failed">${r.failed}✗</span>
      <span class="c-waiting" title="tasks waiting">${r.waiting}◌</span>
    </span>
  </div>`}function M({error:e}){return e?d`<div class="error" role="alert">${e.message||String(e)}</div>`:null}var me=null;function $e(e,t="Confirm"){return new Promise(n=>me&&me({message:e,confirmLabel:t,resolve:n}))}function Ot(){let[e,t]=v(null);if(P(()=>(me=t,()=>me=null),[]),!e)return null;let n=r=>{t(null),e.resolve(r)};return d`<div class="overlay" onClick=${()=>n(!1)}>
    <div class="dialog" role="dialog" onClick=${r=>r.stopPropagation()}>
      <p>${e.message}</p>
      <div class="buttons">
        <button id="confirm-cancel" onClick=${()=>n(!1)}>Keep</button>
        <button id="confirm-ok" class="danger" onClick=${()=>n(!0)}>${e.confirmLabel}</button>
      </div>
    </div>
  </div>`}var Rt=50,dn=["","queued","running","paused","done","failed","cancelled"],un=["","builtin","povray","blender"],pn=[["name","Name"],["state","State"],[null,"Progress"],[null,"Package"],[null,"Placement"],["priority","Priority"],[null,"Owner"],["created","Age"],[null,"ETA"]];function Fe(e){return e.origin_job_id?`\u2190 from ${e.origin_site}`:e.placement==="local"?"local":`\u2192 ${e.placement}${e.remote_job_id?` (${e.remote_job_id})`:""}`}function fn(e,t,n){let r=new URLSearchParams({limit:Rt,offset:n,sort:t});for(let[s,o]of Object.entries(e))o&&r.set(s,o);return r.toString()}var Mt=["state","package","placement","owner","q"];function jt({peers:e,initial:t}){let[n,r]=v(Object.fromEntries(Mt.map(c=>[c,t[c]||""]))),[s,o]=v(t.sort||"-created"),[a,i]=v(Number(t.offset)||0),[u,p]=v(null),[_,m]=v(null),[l,f]=v(Date.now()/1e3),$=fn(n,s,a);P(()=>{let c=new URLSearchParams;for(let g of Mt)n[g]&&c.set(g,n[g]);s!=="-created"&&c.set("sort",s),a&&c.set("offset",a);let h=`#/jobs${c.toString()?`?${c}`:""}`;location.hash!==h&&history.replaceState(null,"",h)},[$]),U(async()=>{try{p(await L(`/api/v1/jobs?${$}`)),f(Date.now()/1e3),m(null)}catch(c){m(c)}},c=>c.type==="change"&&(c.all||c.jobs.length>0),[$],1e3);let y=c=>h=>{r({...n,[c]:h.target.value}),i(0)},w=c=>{o(s===`-${c}`?c:`-${c}`),i(0)},b=u&&u.page;return d`<section id="jobs-view">
    <div class="filters">
      <input id="job-search" type="search" placeholder="Search name or id" value=${n.q} onInput=${y("q")} />
      <label>State <select id="filter-state" value=${n.state} onChange=${y("state")}>
        ${dn.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Package <select id="filter-package" value=${n.package} onChange=${y("package")}>
        ${un.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Placement <select id="filter-placement" value=${n.placement} onChange=${y("placement")}>
        <option value="">any</option><option value="local">local</option>
        <option value="forwarded">forwarded to a peer</option><option value="accepted">accepted from a peer</option>
        ${[...new Set([...e||[],...t.placement?[t.placement]:[]])].filter(c=>!["local","forwarded","accepted"].includes(c)).map(c=>d`<option value=${c}>peer ${c}</option>`)}
      </select></label>
      <input id="filter-owner" placeholder="Owner" value=${n.owner} onInput=${y("owner")} size="10" />
    </div>
    <${M} error=${_} />
    <table class="jobs">
      <thead><tr>
        ${pn.map(([c,h])=>c?d`<th class="sortable" onClick=${()=>w(c)}>${h}${s===c?" \u25B2":s===`-${c}`?" \u25BC":""}</th>`:d`<th>${h}</th>`)}
      </tr></thead>
      <tbody>
        ${u&&u.jobs.map(c=>d`<tr class="job-row" data-job=${c.id} key=${c.id}>
            <td><a href=${`#/job/${c.id}`}>${c.name}</a><div class="dim mono">${c.id}</div></td>
            <td><${N} state=${c.state} />
              ${c.why_waiting&&d`<div class="dim small why">${c.why_waiting}</div>`}
              ${c.state==="failed"&&c.error&&d`<div class="error small">${c.error}</div>`}</td>
            <td><${he} job=${c} /></td>
            <td class="mono">${c.requirement}</td>
            <td class="placement">${Fe(c)}${c.remote&&c.remote.frames_done!=null?d`<div class="dim small">remote ${c.remote.state||""} ${c.remote.frames_done}/${c.frame_count}</div>`:null}</td>
            <td>${c.priority}</td>
            <td>${c.owner}</td>
            <td title=${new Date(c.created_at*1e3).toLocaleString()}>${A(l-c.created_at)}</td>
            <td>${c.eta_s!=null?A(c.eta_s):""}</td>
          </tr>`)}
      </tbody>
    </table>
    ${u&&u.jobs.length===0&&d`<p class="empty">No jobs match.</p>`}
    ${b&&d`<div class="pager">
      <button disabled=${a===0} onClick=${()=>i(Math.max(0,a-Rt))}>‹ Newer</button>
      <span id="page-info">${b.total?`${a+1}\u2013${a+u.jobs.length} of ${b.total}`:"0 jobs"}</span>
      <button disabled=${b.next_offset==null} onClick=${()=>i(b.next_offset)}>Older ›</button>
    </div>`}
  </section>`}var _n=256*1024;function At(e){return typeof e=="object"&&e!==null?e.attempt:e}function Nt({jobId:e,task:t,features:n,onClose:r}){let[s,o]=v(null),[a,i]=v({text:"",meta:null,error:null}),u=G(null),p=t.attempt>0;P(()=>{if(!n.logs||!p)return;let l=new AbortController,f="",$=!0;return(async()=>{let y=0,w=`/api/v1/jobs/${e}/tasks/${t.index}/log`;for(;$;){let b=new URLSearchParams({offset:y});s!=null&&b.set("attempt",s),y>0&&b.set("wait",10);let c;try{c=await L(`${w}?${b}`,{signal:l.signal})}catch(h){$&&i({text:f,meta:null,error:h});return}if(f=(f+c.text).slice(-_n),i({text:f,meta:c,error:null}),c.complete)return;y=c.next_offset}})(),()=>{$=!1,l.abort()}},[e,t.index,s,n.logs,p]),P(()=>{u.current&&(u.current.scrollTop=u.current.scrollHeight)},[a.text]);let _=a.meta,m=n.logs?a.text:t.log_tail||"";return d`<section class="log-panel" id="log-panel">
    <header>
      <b>Log of task ${t.index}</b> (frames ${t.frames}) · ${t.state}
      ${_&&_.attempts&&_.attempts.length>1&&d`<select id="log-attempt" value=${s??_.attempt} onChange=${l=>o(Number(l.target.value))}>
        ${_.attempts.map(l=>d`<option value=${At(l)}>attempt ${At(l)}</option>`)}
      </select>`}
      ${_&&d`<span class="dim"> on ${_.server||"\u2014"}${_.complete?"":" \xB7 live"}</span>`}
      ${_&&_.truncated_bytes?d`<span class="dim"> · first ${_.truncated_bytes} bytes not kept</span>`:null}
      <button class="close" onClick=${r}>×</button>
    </header>
    ${t.error&&d`<div class="error" id="task-error">${t.error}</div>`}
    ${!n.logs&&d`<div class="dim small">The last lines the server reported for this task.</div>`}
    ${a.error&&d`<div class="error">${a.error.message}</div>`}
    <pre ref=${u} id="log-text">${p?m||"(no output)":"(not started yet)"}</pre>
  </section>`}var mn=12;function hn(e,t=mn){let n=e.tasks.finished.map((a,i)=>[a,i]).filter(([a])=>a!=null).sort((a,i)=>i[0]-a[0]),r=[],s=0;e.tasks.size.forEach(a=>{r.push(s),s+=a});let o=[];for(let[a,i]of n){for(let u=r[i]+e.tasks.size[i]-1;u>=r[i]&&o.length<t;u-=1)e.states[u]==="d"&&o.push({frame:e.frames[u],version:a});if(o.length>=t)break}return o}function Ht(e){let[t,n]=v({url:null,error:null});return P(()=>{if(!e)return;let r=new AbortController,s=null;return mt(e,r.signal).then(o=>{s=o,n({url:o,error:null})}).catch(o=>o.name!=="AbortError"&&n({url:null,error:o})),()=>{r.abort(),s&&URL.revokeObjectURL(s)}},[e]),t}function Ft({jobId:e,item:t,previews:n,large:r,onOpen:s}){let o=n?"/preview":"",{url:a,error:i}=Ht(`/api/v1/jobs/${e}/frames/${t.frame}${o}?v=${t.version}`);return d`<figure class=${r?"latest":"thumb"} data-frame=${t.frame} onClick=${()=>s(t.frame)}>
    ${a?d`<img src=${a} alt=${`frame ${t.frame}`} />`:d`<div class="placeholder">${i?"no preview":"\u2026"}</div>`}
    <figcaption>frame ${t.frame}</figcaption>
  </figure>`}function Ut({jobId:e,grid:t,previews:n}){let[r,s]=v(null),o=hn(t);if(!o.length)return d`<p class="dim">No finished frames yet.</p>`;let[a,...i]=o;return d`<div class="media">
    <${Ft} jobId=${e} item=${a} previews=${n} large=${!0} onOpen=${s} key=${`L${a.frame}-${a.version}`} />
    <div class="thumbs">
      ${i.map(u=>d`<${Ft} jobId=${e} item=${u} previews=${n} onOpen=${s} key=${`${u.frame}-${u.version}`} />`)}
    </div>
    ${r!=null&&d`<${$n} jobId=${e} frame=${r} onClose=${()=>s(null)} />`}
  </div>`}function $n({jobId:e,frame:t,onClose:n}){let{url:r,error:s}=Ht(`/api/v1/jobs/${e}/frames/${t}`);return d`<div class="overlay" id="full-frame" onClick=${n}>
    <div class="frame-view">
      ${r?d`<img src=${r} alt=${`frame ${t} full size`} />`:d`<p>${s?s.message:"loading\u2026"}</p>`}
      <p>frame ${t} · click to close</p>
    </div>
  </div>`}var He=100,gn=["queued","running","paused"];function vn({job:e,selected:t,clearSelection:n,onDone:r}){let[s,o]=v(String(e.priority)),[a,i]=v(!1),[u,p]=v(null),_=e.placement==="local",m=async($,y,w,b)=>{if(!(w&&!await $e(w,b))){i(!0);try{await L(`/api/v1/jobs/${e.id}/${$}`,{method:"POST",body:y}),p(null),$==="retry"&&y&&n(),r()}catch(c){p(c)}finally{i(!1)}}},l=e.progress.tasks,f=gn.includes(e.state);return d`<div class="controls">
    ${["queued","running"].includes(e.state)&&d`<button id="btn-pause" disabled=${a} onClick=${()=>m("pause")}>Pause</button>`}
    ${e.state==="paused"&&d`<button id="btn-resume" disabled=${a} onClick=${()=>m("resume")}>Resume</button>`}
    ${f&&d`<button id="btn-cancel" class="danger" disabled=${a}
      onClick=${()=>m("cancel",void 0,`Cancel job ${e.name}? Frames still rendering are stopped and their work is lost.`,"Cancel job")}>Cancel…</button>`}
    ${_&&l.failed>0&&d`<button id="btn-retry" disabled=${a} onClick=${()=>m("retry")}>Retry ${l.failed} failed</button>`}
    ${_&&t.size>0&&d`<button id="btn-requeue" disabled=${a}
      onClick=${()=>m("retry",{frames:X(t)},`Render frames ${X(t)} again? Their current output is replaced.`,"Render again")}>
      Requeue ${t.size} selected</button>`}
    ${f&&d`<span class="priority">Priority
      <input id="priority-input" type="number" min="0" max="100" value=${s} onInput=${$=>o($.target.value)} />
      <button id="btn-priority" disabled=${a||s===String(e.priority)}
        onClick=${()=>m("priority",{priority:Number(s)})}>Set</button></span>`}
    <${M} error=${u} />
  </div>`}function bn({job:e}){let t=e.profile,n=[["Owner",e.owner],["Package",e.requirement],["Frames",`${e.frames} (${e.frame_count}, chunks of ${e.chunk_size})`],["Scene",e.scene],["Submitted",`${new Date(e.created_at*1e3).toLocaleString()} (${H(e.created_at)} ago)`],["ETA",e.eta_s!=null?A(e.eta_s):"\u2014"],["Time per frame",e.seconds_per_frame!=null?`${e.seconds_per_frame.toFixed(1)} s`:"\u2014"],["Needs",[t.min_memory_mb?`${t.min_memory_mb} MiB`:null,t.min_cores>1?`${t.min_cores} cores`:null,t.gpu?"a GPU":null,(t.tags||[]).length?`tags ${t.tags.join(", ")}`:null].filter(Boolean).join(", ")||"any server"],["Attempts",`up to ${t.max_attempts}, ${t.task_timeout_s} s per task${t.max_servers?`, at most ${t.max_servers} servers`:""}`],["Settings",Object.entries(e.settings||{}).map(([r,s])=>`${r}=${JSON.stringify(s)}`).join(" ")||"\u2014"],["Output",e.storage_dir]];return d`<dl class="facts">${n.map(([r,s])=>d`<dt>${r}</dt><dd>${s}</dd>`)}</dl>`}function yn({job:e}){if(e.origin_job_id)return d`<div class="fed" id="fed-accepted">Accepted from <b>${e.origin_site}</b>, where it is job <span class="mono">${e.origin_job_id}</span>.</div>`;if(e.placement==="local")return null;let t=e.remote||{},n=e.transfer||{};return d`<div class="fed" id="fed-forwarded">
    Forwarded to <b>${e.placement}</b>${e.placement_reason?d` — ${e.placement_reason}`:""}.<br />
    Remote job <span class="mono" id="remote-job-id">${e.remote_job_id||t.job_id||"\u2014"}</span>
    · remote state ${t.state||"\u2014"} · <span id="remote-frames">${t.frames_done??0}/${e.frame_count}</span> frames done there
    ${t.last_contact_at?d` · last heard ${H(t.last_contact_at)} ago`:""}<br />
    ${e.peers_tried&&e.peers_tried.length>1?d`Offered to ${e.peers_tried.join(", ")}.<br />`:""}
    Transfer: ${K(n.bytes_sent||0)} sent, ${n.blobs_sent??0} blobs sent, ${n.blobs_skipped??0} already there
    ${t.forward_state?d` · ${t.forward_state}`:""}
  </div>`}function wn({jobId:e,page:t,filter:n,setFilter:r,offset:s,setOffset:o,onLog:a}){return d`<section>
    <h3>Tasks
      <select id="task-filter" value=${n} onChange=${i=>{r(i.target.value),o(0)}}>
        <option value="">all</option>
        ${["waiting","dispatched","running","done","failed"].map(i=>d`<option value=${i}>${i}</option>`)}
      </select>
    </h3>
    <table class="tasks">
      <thead><tr><th>#</th><th>Frames</th><th>State</th><th>Attempt</th><th>Server</th><th>Started</th><th>Took</th><th>Error</th><th></th></tr></thead>
      <tbody>
        ${t&&t.tasks.map(i=>d`<tr class="task-row" data-task=${i.index} data-state=${i.state} key=${i.id}>
          <td>${i.index}</td><td class="mono">${i.frames}</td><td><${N} state=${i.state} /></td>
          <td>${i.attempt}${i.failures?d` <span class="c-failed">(${i.failures} failed)</span>`:""}</td>
          <td>${i.server||"\u2014"}</td><td>${pe(i.started_at)}</td>
          <td>${i.started_at&&i.finished_at?A(i.finished_at-i.started_at):""}</td>
          <td class="error small">${i.error}</td>
          <td><button class="link log-btn" onClick=${()=>a(i)}>log</button></td>
        </tr>`)}
      </tbody>
    </table>
    ${t&&t.tasks_page.total>He&&d`<div class="pager">
      <button disabled=${s===0} onClick=${()=>o(Math.max(0,s-He))}>‹</button>
      ${s+1}–${s+t.tasks.length} of ${t.tasks_page.total}
      <button disabled=${t.tasks_page.next_offset==null} onClick=${()=>o(t.tasks_page.next_offset)}>›</button>
    </div>`}
  </section>`}function xn(e,t){let[n,r]=v({job:null,grid:null,tasks:null,error:null}),s=dt(async()=>{try{let[o,a,i]=await Promise.all([L(`/api/v1/jobs/${e}?tasks=0`),L(`/api/v1/jobs/${e}/grid`),L(`/api/v1/jobs/${e}/tasks?${t}`)]);r({job:o.job,grid:a,tasks:i,error:null})}catch(o){r(a=>({...a,error:o}))}},[e,t]);return U(s,o=>o.type==="change"&&(o.all||o.jobs.includes(e)),[e,t],700),[n,s]}function Dt({jobId:e,features:t}){let[n,r]=v(""),[s,o]=v(0),[a,i]=v(new Set),[u,p]=v(null),[_,m]=v(null),l=new URLSearchParams({offset:s,limit:He,...n?{state:n}:{}}).toString(),[{job:f,grid:$,tasks:y,error:w},b]=xn(e,l),c=(g,C)=>{let x=new Set(a);if(C&&u!=null){let O=$.frames.indexOf(u),S=$.frames.indexOf(g);for(let D=Math.min(O,S);D<=Math.max(O,S);D+=1)x.add($.frames[D])}else x.has(g)?x.delete(g):x.add(g);p(g),i(x)};if(!f)return d`<section><${M} error=${w} />${!w&&d`<p>Loading…</p>`}</section>`;let h=_&&(y&&y.tasks.find(g=>g.id===_.id)||_);return d`<section id="job-view" data-job=${f.id} data-state=${f.state}>
    <h2><a href="#/jobs">Jobs</a> › ${f.name} <${N} state=${f.state} /> <span class="dim mono">${f.id}</span></h2>
    <${M} error=${w} />
    <${vn} job=${f} selected=${a} clearSelection=${()=>i(new Set)} onDone=${b} key=${`${f.id}-${f.priority}`} />
    <div class="summary">
      <${he} job=${f} wide=${!0} />
      ${f.why_waiting&&d`<div class="why" id="why-waiting">Waiting: ${f.why_waiting}</div>`}
      ${f.error&&d`<div class="error" id="job-error">${f.error}</div>`}
      <div class="placement">Placement: ${Fe(f)} · priority ${f.priority}</div>
      <${yn} job=${f} />
      ${(f.after||[]).length>0&&d`<div class="after" id="job-after">After:
        ${f.after.map(g=>d`<span class=${g.met?"c-done":"dim"}> <a href=${`#/job/${g.job_id}`}>${g.name||g.job_id}</a>
          (${g.kind==="end"?"ends":g.kind==="frames"?"frame by frame":"done"}; ${g.state} ${g.frames_done}/${g.frame_count})${g.met?" \u2713":""}</span>`)}
      </div>`}
    </div>
    <div class="columns">
      <div class="main-col">
        <h3>Frames</h3>
        ${$&&d`<${yt} grid=${$} selected=${a} onSelect=${c} />`}
        <h3>Latest frames</h3>
        ${$&&d`<${Ut} jobId=${f.id} grid=${$} previews=${t.previews} />`}
      </div>
      <div class="side-col"><h3>Profile</h3><${bn} job=${f} /></div>
    </div>
    ${h&&d`<${Nt} jobId=${f.id} task=${h} features=${t} onClose=${()=>m(null)} key=${`${h.id}-${h.attempt}`} />`}
    <${wn} jobId=${f.id} page=${y} filter=${n} setFilter=${r} offset=${s} setOffset=${o} onLog=${m} />
  </section>`}function kn(e){let t=[];e.preference!=null&&t.push(`preference ${e.preference}`),e.cost!=null&&t.push(`cost ${e.cost}`);let n=e.policy||{};return n.max_slots&&t.push(`at most ${n.max_slots} slots`),n.max_queued_jobs&&t.push(`${n.max_queued_jobs} queued jobs`),n.packages&&t.push(`packages ${n.packages.join(", ")}`),n.hours&&t.push(`hours ${n.hours}`),t.join(" \xB7 ")}function It(){let[e,t]=v(null),[n,r]=v(null);U(async()=>{try{t((await L("/api/v1/peers")).peers),r(null)}catch(o){r(o)}},o=>o.type==="tick"||o.type==="change"&&o.all,[],1e3);let s=(e||[]).some(o=>o.bytes_sent!=null);return d`<section id="peers-view">
    <${M} error=${n} />
    <table class="peers">
      <thead><tr><th>Peer</th><th>Link</th><th>Capacity</th><th>Servers</th><th>Terms</th><th>Forwarded to</th><th>Accepted from</th>${s&&d`<th>Moved</th>`}<th>Last error</th></tr></thead>
      <tbody>
        ${e&&e.map(o=>d`<tr class="peer-row" data-peer=${o.name} key=${o.name}>
          <td><b>${o.name}</b><div class="dim small mono">${o.url}</div></td>
          <td><${N} state=${o.state} />${o.last_seen?d`<div class="dim small">heard ${H(o.last_seen)} ago</div>`:""}</td>
          <td>${o.capacity?d`${o.capacity.free_slots} free slots on ${o.capacity.servers} servers · queue ${o.capacity.queue}`:d`<span class="dim">no advert yet</span>`}</td>
          <td class="small">${(o.servers||[]).map(a=>d`<div>${a.name} <span class="dim">${a.status} ${a.slots-a.free_slots}/${a.slots} · ${Object.keys(a.packages).join(", ")}</span></div>`)}</td>
          <td class="small">${kn(o)}</td>
          <td><a href=${`#/jobs?placement=${o.name}`}>${o.jobs_forwarded??0} jobs</a>${o.forward===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          <td>${o.jobs_accepted??0} jobs${o.accept===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          ${s&&d`<td class="small">${K(o.bytes_sent)} sent · ${K(o.bytes_received)} received</td>`}
          <td class="error small">${o.last_error||""}</td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&d`<p class="empty">This site has no peers configured ([[peers]] in its config).</p>`}
  </section>`}function zt(){let[e,t]=v(null),[n,r]=v(null),s=async()=>{try{t((await L("/api/v1/servers")).servers),r(null)}catch(a){r(a)}};U(s,a=>a.type==="tick"||a.type==="change"&&a.servers,[],1e3);let o=async(a,i)=>{try{if(i==="forget"){if(!await $e(`Forget render server ${a.name}? It registers again if it reconnects.`,"Forget"))return;await L(`/api/v1/servers/${a.id}`,{method:"DELETE"})}else await L(`/api/v1/servers/${a.id}/${i}`,{method:"POST"});await s()}catch(u){r(u)}};return d`<section id="servers-view">
    <${M} error=${n} />
    <table class="servers">
      <thead><tr><th>Name</th><th>Status</th><th>Rendering</th><th>Slots</th><th>Last hour</th><th>Hardware</th><th>Packages</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${e&&e.map(a=>d`<tr class="server-row" data-server=${a.name} key=${a.id}>
          <td><b>${a.name}</b><div class="dim small">${a.host}</div></td>
          <td><${N} state=${a.status} />${a.last_heartbeat?d`<div class="dim small">seen ${H(a.last_heartbeat)} ago</div>`:""}</td>
          <td>${(a.current||[]).map(i=>d`<div><a href=${`#/job/${i.job}`} class="mono">${i.job}</a> <span class="dim">frames ${i.frames}</span></div>`)}</td>
          <td>${a.slots-a.free_slots}/${a.slots} busy</td>
          <td><div class="util"><span style=${{width:Re(a.utilisation)}}></span></div>${Re(a.utilisation)}</td>
          <td class="small">${a.cores} cores · ${Math.round(a.memory_mb/1024)} GiB${a.gpus.length?` \xB7 ${a.gpus.join(", ")}`:""}<div class="dim">${a.os} ${a.cpu_model}</div></td>
          <td class="small mono">${Object.entries(a.packages).map(([i,u])=>`${i} ${u}`).join(", ")}${a.tags.length?d`<div class="dim">tags ${a.tags.join(", ")}</div>`:""}</td>
          <td class="error small">${a.last_error?d`${a.last_error.error}<div class="dim">${H(a.last_error.at)} ago</div>`:""}</td>
          <td class="actions">
            ${a.status==="disabled"?d`<button class="btn-enable" onClick=${()=>o(a,"enable")}>Enable</button>`:d`<button class="btn-disable" onClick=${()=>o(a,"disable")}>Disable</button>`}
            ${a.status==="offline"&&d`<button class="danger" onClick=${()=>o(a,"forget")}>Forget…</button>`}
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.length===0&&d`<p class="empty">No render server has connected yet: start one with <code>spillway render-server --agent URL</code>.</p>`}
  </section>`}function Bt(e){let[t,n=""]=e.replace(/^#/,"").split("?"),r=t.split("/").filter(Boolean),s=Object.fromEntries(new URLSearchParams(n));return r[0]==="job"&&r[1]?{view:"job",id:decodeURIComponent(r[1]),params:s}:r[0]==="servers"||r[0]==="peers"?{view:r[0],params:s}:{view:"jobs",params:s}}function Sn(){let[e,t]=v(Bt(location.hash));return P(()=>{let n=()=>t(Bt(location.hash));return window.addEventListener("hashchange",n),()=>window.removeEventListener("hashchange",n)},[]),e}function Wt(e){let t=Object.keys(e&&e.paths||{});return{logs:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/log")),previews:t.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/preview"))}}function Cn({site:e,onLogin:t}){let[n,r]=v(""),[s,o]=v(null);return d`<form class="login" id="login" onSubmit=${async i=>{i.preventDefault(),W(n.trim());try{await L("/api/v1/jobs?limit=1"),t()}catch(u){W(""),o(u.status===401?new Error("That token was not accepted; check it and try again."):u)}}}>
    <h2>Spillway site ${e}</h2>
    <p>This agent needs a client token (one of <code>[auth] client_tokens</code> in its config).
      It is kept for this browser tab only.</p>
    <input id="token-input" type="password" autocomplete="current-password" placeholder="Token" value=${n}
      onInput=${i=>r(i.target.value)} autofocus />
    <button id="token-submit" type="submit">Sign in</button>
    <${M} error=${s} />
  </form>`}function En({site:e,route:t,authed:n,onSignOut:r}){let s=Lt(),o=(a,i)=>d`<a href=${`#/${a}`} id=${`nav-${a}`} class=${t.view===a||a==="jobs"&&t.view==="job"?"active":""}>${i}</a>`;return d`<nav>
    <span class="site">Spillway · <b id="site-name">${e}</b></span>
    ${o("jobs","Jobs")}${o("servers","Render servers")}${o("peers","Peers")}
    <span class="spacer"></span>
    <span id="live-status" class=${s?"live on":"live off"}>${s?"\u25CF live":"\u25CB reconnecting"}</span>
    ${n&&Me()&&d`<button class="link" id="sign-out" onClick=${r}>sign out</button>`}
  </nav>`}function Tn(){let e=Sn(),[t,n]=v(null),[r,s]=v({logs:!1,previews:!1}),[o,a]=v(!1),[i,u]=v([]),[p,_]=v(null);if(P(()=>(L("/api/v1/health").then(f=>{n(f),a(!f.client_auth||!!Me())}).catch(_),L("/api/v1/openapi.json").then(f=>s(Wt(f))).catch(()=>s(Wt(null))),ft(()=>{W(""),a(!1)})),[]),P(()=>{if(o)return Tt(()=>{W(""),a(!1)}),L("/api/v1/peers").then(f=>u(f.peers.map($=>$.name))).catch(()=>u([])),Pt},[o]),P(()=>{t&&(document.title=`Spillway \xB7 ${t.site}`)},[t]),p)return d`<main><${M} error=${p} /></main>`;if(!t)return d`<main><p>Connecting…</p></main>`;if(!o)return d`<main><${Cn} site=${t.site} onLogin=${()=>a(!0)} /></main>`;let m=()=>{W(""),a(!1)},l;return e.view==="job"?l=d`<${Dt} jobId=${e.id} features=${r} key=${e.id} />`:e.view==="servers"?l=d`<${zt} />`:e.view==="peers"?l=d`<${It} />`:l=d`<${jt} peers=${i} initial=${e.params} key=${JSON.stringify(e.params)} />`,d`<${En} site=${t.site} route=${e} authed=${o} onSignOut=${m} />
    <main>${l}</main>
    <${Ot} />`}et(d`<${Tn} />`,document.getElementById("app"));
